package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/veraticus/egoengine/internal/health/printable"
	"github.com/veraticus/egoengine/internal/health/statedir"
	"github.com/veraticus/egoengine/internal/health/status"
	"github.com/veraticus/egoengine/internal/secrets/engine"
)

func syncCommand() *cli.Command {
	return &cli.Command{
		Name:      "sync",
		Usage:     "run one ingestion pass in this process, then exit (for scripts and CI)",
		ArgsUsage: "[NAME...]",
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "timeout", Usage: "give up after this long", Value: 2 * time.Minute},
			&cli.BoolFlag{Name: "force", Usage: "install 1Password's copy even where the consumer-rewrites policy would keep the local file"},
		},
		Action: func(c *cli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			cfg, err := e.loadConfig()
			if err != nil {
				return err
			}
			eng, err := engine.Open(cfg, e.setup())
			if err != nil {
				return err
			}
			defer eng.Close()
			rep, err := runPass(c.Context, c.Duration("timeout"), eng, engine.Options{
				Trigger: status.TriggerSync, Names: c.Args().Slice(), Force: c.Bool("force"), Wait: true,
			})
			return reportOutcome(c.App.Writer, rep, err)
		},
	}
}

// stopGrace is how long a pass gets to stop between two secrets, once told
// to, before this process gives up on it.
const stopGrace = 2 * time.Second

// runPass runs one pass in this process, which SIGTERM, SIGINT and the
// timeout stop. The engine stops between two secrets; a source stuck where
// it cannot see its context (a read that never returns) is abandoned after
// stopGrace, and the process exits anyway: writes are atomic and the pass
// lock is an flock, so leaving mid-pass loses nothing. (The daemon runs its
// passes through daemon.EngineRunner instead, and stops them itself.)
func runPass(parent context.Context, timeout time.Duration, eng *engine.Engine, opts engine.Options) (*engine.Report, error) {
	ctx, stop := signal.NotifyContext(parent, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type result struct {
		rep *engine.Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := eng.Pass(ctx, opts)
		done <- result{rep, err}
	}()
	select {
	case r := <-done:
		return r.rep, r.err
	case <-ctx.Done():
	}
	select {
	case r := <-done:
		return r.rep, r.err
	case <-time.After(stopGrace):
		why := "it was interrupted"
		if parent.Err() == nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			why = fmt.Sprintf("it ran past its timeout of %s", timeout)
		}
		return nil, fmt.Errorf("the pass was abandoned %s after %s, stuck waiting on its source; every installed file is as it was", stopGrace, why)
	}
}

// reportOutcome prints a pass's report a line per secret and turns it into
// the contract's exit code. Names come from 1Password titles and errors from
// anywhere: each is made printable, so that one secret is one line.
func reportOutcome(w io.Writer, rep *engine.Report, err error) error {
	if rep != nil {
		for _, o := range rep.Outcomes {
			line := fmt.Sprintf("%s: %s", printable.Name(o.Name), printable.Name(string(o.State)))
			if o.Note != "" {
				line += " (" + printable.Text(o.Note) + ")"
			}
			if o.Class != "" {
				line += " (" + printable.Name(string(o.Class)) + ")"
			}
			if o.Error != "" {
				line += ": " + printable.Text(o.Error)
			}
			fmt.Fprintln(w, line)
		}
		for _, n := range rep.Notices {
			fmt.Fprintln(w, "note: "+printable.Text(n))
		}
	}
	return exitFor(rep, err)
}

func exitFor(rep *engine.Report, err error) error {
	var ue *engine.UsageError
	if errors.As(err, &ue) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	if !rep.OK() {
		return cli.Exit("", exitFailed)
	}
	return nil
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show each secret: state, when fetched, changed and checked, errors, next refresh",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "machine-readable output"}},
		Action: func(c *cli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			st, err := status.Load(e.stateDir)
			if err != nil {
				return err
			}
			if err := checkHome(st, e); err != nil {
				return usageError{err}
			}
			st.LookAtFiles()
			if c.Bool("json") {
				err = status.JSON(c.App.Writer, st)
			} else {
				err = status.Human(c.App.Writer, st, time.Now(), e.home)
			}
			if err != nil {
				return err
			}
			// The state says how the last passes went; a broken config says
			// how the next ones will go, so it decides the exit code first.
			if _, err := e.loadConfig(); err != nil {
				then := "egoagent start, sync and refresh refuse to run until it is fixed"
				if st.Daemon != nil && st.Daemon.Running {
					then = "the running daemon keeps the previous configuration until the file is fixed"
				}
				return usageError{fmt.Errorf("%w (%s)", err, then)}
			}
			for _, s := range st.Secrets {
				if !status.OK(s.State) {
					return cli.Exit("", exitFailed)
				}
			}
			return nil
		},
	}
}

// metadataCommand prints the line Coder shows. It reads the state file and
// nothing else: no config, no 1Password, no SDK. It does not build the
// logger either, and it exits 0 whatever the secrets' state, because Coder
// shows a non-zero exit as a failure of the script rather than the line.
func metadataCommand() *cli.Command {
	return &cli.Command{
		Name:  "metadata",
		Usage: "print one short status line for Coder's metadata UI",
		Action: func(c *cli.Context) error {
			home, err := os.UserHomeDir()
			if err != nil {
				fmt.Fprintln(c.App.Writer, "egoagent: HOME is not set")
				return nil
			}
			st, err := status.Load(statedir.Path(home))
			if err != nil {
				fmt.Fprintln(c.App.Writer, "egoagent: state unreadable, run egoagent status")
				return nil
			}
			if status.CheckHome(st, statedir.Path(home), home) != nil {
				fmt.Fprintln(c.App.Writer, "egoagent: state folder shared with another home, run egoagent status")
				return nil
			}
			st.LookAtFiles()
			fmt.Fprintln(c.App.Writer, status.Metadata(st, time.Now()))
			return nil
		},
	}
}

// checkHome reports a state folder, or the daemon on it, that belongs to
// another home.
func checkHome(st *status.State, e *env) error {
	if err := status.CheckHome(st, e.stateDir, e.home); err != nil {
		return err
	}
	if d := st.Daemon; d != nil && d.Running && d.Home != "" && d.Home != status.HomeID(e.home) {
		return &status.ForeignError{Dir: e.stateDir, Owner: d.Home, Home: status.HomeID(e.home), PID: d.PID}
	}
	return nil
}
