package engine

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/veraticus/egoengine/internal/health/check"
	"github.com/veraticus/egoengine/internal/health/statedir"
	"github.com/veraticus/egoengine/internal/secrets/config"
	"github.com/veraticus/egoengine/internal/secrets/source"
)

// Setup is what an engine needs besides its configuration: where the home
// and state folder are, where to log, and the 1Password helper.
type Setup struct {
	Home     string
	StateDir string
	Log      *zap.Logger
	// Helper is the 1Password helper to start; "" finds egoagent-op beside
	// this executable (where make build and the image put it), else on PATH.
	Helper string
	// Holder: see Engine.
	Holder string
}

// closeGrace bounds Close: a helper stuck in a request is left to the
// kernel, which kills it when this process ends (it is started with
// Pdeathsig).
const closeGrace = 2 * time.Second

// Open builds the engine for cfg: the configured source (the directory, or
// the helper egoagent-op, started on first use) and the checker. `sync`,
// `refresh` without a daemon, and each of the daemon's passes open one and
// Close it when the pass is over, which ends the helper.
func Open(cfg *config.Config, s Setup) (*Engine, error) {
	var src source.Source
	if cfg.Source.Kind == config.SourceDir {
		src = source.NewDir(cfg.Source.Dir)
	} else {
		helper, err := findHelper(s.Helper)
		if err != nil {
			return nil, err
		}
		src = source.NewProcess(helper)
	}
	return &Engine{
		Config: cfg,
		Source: src,
		Checker: check.New(check.Options{
			CodexCommand: cfg.Check.CodexCommand,
			Timeout:      cfg.Check.Timeout,
			StageDir:     filepath.Join(s.StateDir, statedir.StageDir),
		}),
		Home:     s.Home,
		StateDir: s.StateDir,
		Log:      s.Log,
		Holder:   s.Holder,
	}, nil
}

// Close ends the source's helper process, if one was started.
func (e *Engine) Close() {
	c, ok := e.Source.(io.Closer)
	if !ok {
		return
	}
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(closeGrace):
	}
}

func findHelper(helper string) (string, error) {
	if helper != "" {
		return helper, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "egoagent-op")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("egoagent-op"); err == nil {
		return p, nil
	}
	return "", errors.New("egoagent-op, the 1Password helper, is neither beside egoagent nor on PATH; install both (make build puts them in bin/)")
}
