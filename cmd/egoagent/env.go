package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sys/unix"

	"github.com/veraticus/egoengine/internal/health/check"
	"github.com/veraticus/egoengine/internal/health/printable"
	"github.com/veraticus/egoengine/internal/health/statedir"
	"github.com/veraticus/egoengine/internal/secrets/config"
	"github.com/veraticus/egoengine/internal/secrets/daemon"
	"github.com/veraticus/egoengine/internal/secrets/engine"
	"github.com/veraticus/egoengine/internal/secrets/source"
)

// Global flags. Every setting egoagent takes from flags or the environment
// is declared here and nowhere else. The 1Password token is deliberately not
// among them: it is read from OP_SERVICE_ACCOUNT_TOKEN by the source alone.
var globalFlags = []cli.Flag{
	&cli.StringFlag{
		Name:    "config",
		Usage:   "configuration file (default: ~/.config/egoagent/config.toml if present, else /etc/egoagent/config.toml)",
		EnvVars: []string{"EGOAGENT_CONFIG"},
	},
	&cli.StringFlag{
		Name:  "log-format",
		Usage: "auto (readable on a terminal, JSON otherwise), console or json",
		Value: "auto",
	},
	&cli.BoolFlag{Name: "verbose", Usage: "log debug detail"},
	&cli.StringFlag{
		Name:    "op-helper",
		Usage:   "the 1Password helper (default: egoagent-op beside this binary, else on PATH)",
		EnvVars: []string{"EGOAGENT_OP_HELPER"},
		Hidden:  true,
	},
}

// env is what every command needs from the process: where home and state
// are, and a logger.
type env struct {
	home     string
	stateDir string
	log      *zap.Logger
	c        *cli.Context
}

func newEnv(c *cli.Context) (*env, error) {
	home, err := os.UserHomeDir()
	if err != nil || !filepath.IsAbs(home) {
		return nil, usageError{errors.New("HOME is not set to an absolute path; egoagent keeps its state and secrets under it")}
	}
	log, err := newLogger(c.String("log-format"), c.Bool("verbose"))
	if err != nil {
		return nil, usageError{err}
	}
	return &env{home: home, stateDir: statedir.Path(home), log: log, c: c}, nil
}

// configPath is absolute, so that the daemon and its clients can tell
// whether they mean the same file.
func (e *env) configPath() string {
	p := e.c.String("config")
	if p == "" {
		p = config.Path(e.home)
	}
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	return p
}

func (e *env) configEnv() config.Env { return config.Env{Home: e.home, StateDir: e.stateDir} }

// request is a control-socket request that says who asks.
func (e *env) request(op string) daemon.Request {
	return daemon.Request{Op: op, Home: e.home, Config: e.configPath()}
}

func (e *env) loadConfig() (*config.Config, error) {
	cfg, err := config.Load(e.configPath(), e.configEnv())
	if err != nil {
		return nil, usageError{err}
	}
	return cfg, nil
}

// newSource builds the configured source. 1Password is reached through the
// helper process egoagent-op, started on first use; status and metadata
// never get here.
func (e *env) newSource(cfg *config.Config) (source.Source, error) {
	if cfg.Source.Kind == config.SourceDir {
		return source.NewDir(cfg.Source.Dir), nil
	}
	helper, err := opHelper(e.c.String("op-helper"))
	if err != nil {
		return nil, err
	}
	return source.NewProcess(helper), nil
}

// opHelper finds egoagent-op: beside this executable (where make build and
// the image put it), else on PATH.
func opHelper(flag string) (string, error) {
	if flag != "" {
		return flag, nil
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

// newEngine builds the engine for cfg; call done when finished with it, to
// end the 1Password helper if one was started.
func (e *env) newEngine(cfg *config.Config) (eng *engine.Engine, done func(), err error) {
	src, err := e.newSource(cfg)
	if err != nil {
		return nil, nil, err
	}
	done = func() {
		c, ok := src.(io.Closer)
		if !ok {
			return
		}
		// A helper stuck in a request can hold up Close: after stopGrace
		// it is left to the kernel, which kills it when this process ends.
		closed := make(chan struct{})
		go func() { c.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(stopGrace):
		}
	}
	return &engine.Engine{
		Config: cfg,
		Source: src,
		Checker: check.New(check.Options{
			CodexCommand: cfg.Check.CodexCommand,
			Timeout:      cfg.Check.Timeout,
			StageDir:     filepath.Join(e.stateDir, statedir.StageDir),
		}),
		Home:     e.home,
		StateDir: e.stateDir,
		Log:      e.log,
	}, done, nil
}

// newLogger logs for people on a terminal and for machines elsewhere. Log
// lines carry names, paths, references and error classes, never values;
// in both formats they are made printable, since names and errors come
// from outside.
func newLogger(format string, verbose bool) (*zap.Logger, error) {
	switch format {
	case "auto":
		format = "json"
		if isTerminal(os.Stderr) {
			format = "console"
		}
	case "console", "json":
	default:
		return nil, fmt.Errorf("--log-format %q: use auto, console or json", format)
	}
	level := zapcore.InfoLevel
	if verbose {
		level = zapcore.DebugLevel
	}
	var enc zapcore.Encoder
	if format == "console" {
		ec := zap.NewDevelopmentEncoderConfig()
		ec.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05")
		ec.EncodeCaller = nil
		enc = zapcore.NewConsoleEncoder(ec)
	} else {
		ec := zap.NewProductionEncoderConfig()
		ec.EncodeTime = zapcore.RFC3339TimeEncoder
		enc = zapcore.NewJSONEncoder(ec)
	}
	return zap.New(printable.Core(zapcore.NewCore(enc, zapcore.Lock(os.Stderr), level))), nil
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
