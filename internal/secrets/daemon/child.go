package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/veraticus/egoengine/internal/secrets/engine"
)

// ChildRunner runs each pass as `egoagent sync` in a child process: the
// configuration on its stdin, the report as JSON on its stdout, its log on
// the daemon's stderr. The child inherits the environment, which is how
// OP_SERVICE_ACCOUNT_TOKEN reaches it; no secret is ever in its arguments.
type ChildRunner struct {
	Exe  string   // the egoagent binary, normally os.Executable()
	Args []string // global flags to put before "sync"
}

// ChildReport is what `egoagent sync --report-json` prints.
type ChildReport struct {
	Report *engine.Report `json:"report,omitempty"`
	Error  string         `json:"error,omitempty"`
}

// stopGrace is how long a child gets to finish after SIGTERM before it is
// killed; writes are atomic, so even a kill leaves no partial file.
const stopGrace = 2 * time.Second

func (r ChildRunner) Run(ctx context.Context, cfg *Loaded, opts engine.Options) (*engine.Report, error) {
	args := append(append([]string{}, r.Args...), "--config", cfg.Path, "sync",
		"--config-stdin", "--report-json", "--trigger", opts.Trigger)
	if opts.Force {
		args = append(args, "--force")
	}
	for _, n := range opts.Exclude {
		args = append(args, "--exclude", n)
	}
	args = append(args, "--")
	args = append(args, opts.Names...)

	cmd := exec.CommandContext(ctx, r.Exe, args...)
	cmd.Stdin = bytes.NewReader(cfg.Data)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	// A pass must not outlive its daemon, even one killed outright (Docker
	// stopping a container without grace): the kernel sends the child
	// SIGTERM then, and `sync` honours it (see stopGrace).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	cmd.WaitDelay = stopGrace
	err := cmd.Run()

	var cr ChildReport
	if jerr := json.Unmarshal(out.Bytes(), &cr); jerr != nil {
		if err != nil {
			return nil, fmt.Errorf("the pass process failed: %w", err)
		}
		return nil, fmt.Errorf("the pass process printed no report: %w", jerr)
	}
	if cr.Error != "" {
		return cr.Report, errors.New(cr.Error)
	}
	if cr.Report == nil {
		return nil, fmt.Errorf("the pass process printed no report (%v)", err)
	}
	return cr.Report, nil
}
