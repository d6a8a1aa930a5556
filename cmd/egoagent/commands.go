package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/veraticus/egoengine/internal/config"
	"github.com/veraticus/egoengine/internal/daemon"
	"github.com/veraticus/egoengine/internal/engine"
	"github.com/veraticus/egoengine/internal/status"
)

func syncCommand() *cli.Command {
	return &cli.Command{
		Name:      "sync",
		Usage:     "run one ingestion pass in this process, then exit (for scripts and CI)",
		ArgsUsage: "[NAME...]",
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "timeout", Usage: "give up after this long", Value: 2 * time.Minute},
			&cli.BoolFlag{Name: "force", Usage: "install 1Password's copy even where the consumer-rewrites policy would keep the local file"},
			// The daemon runs each pass as a child `sync` with these.
			&cli.BoolFlag{Name: "config-stdin", Hidden: true, Usage: "read the configuration from stdin; --config names it"},
			&cli.BoolFlag{Name: "report-json", Hidden: true, Usage: "print the report as JSON on stdout"},
			&cli.StringFlag{Name: "trigger", Hidden: true, Value: "sync"},
			&cli.StringSliceFlag{Name: "exclude", Hidden: true},
		},
		Action: func(c *cli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			var cfg *config.Config
			if c.Bool("config-stdin") {
				data, rerr := io.ReadAll(os.Stdin)
				if rerr != nil {
					return rerr
				}
				cfg, err = config.Parse(e.configPath(), data, config.Env{Home: e.home})
				if err != nil {
					err = usageError{err}
				}
			} else {
				cfg, err = e.loadConfig()
			}
			if err != nil {
				return childReport(c, nil, err)
			}
			// SIGTERM stops the pass between two secrets; a write under way
			// completes or never happens, it is never partial.
			ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			ctx, cancel := context.WithTimeout(ctx, c.Duration("timeout"))
			defer cancel()
			eng, done, err := e.newEngine(cfg)
			if err != nil {
				return childReport(c, nil, err)
			}
			defer done()
			rep, err := eng.Pass(ctx, engine.Options{
				Trigger: c.String("trigger"), Names: c.Args().Slice(),
				Exclude: c.StringSlice("exclude"), Force: c.Bool("force"),
			})
			return childReport(c, rep, err)
		},
	}
}

// childReport prints a pass's outcome: as JSON for the daemon that runs
// this pass as a child, or as lines for a person.
func childReport(c *cli.Context, rep *engine.Report, err error) error {
	if !c.Bool("report-json") {
		return reportOutcome(c.App.Writer, rep, err)
	}
	cr := daemon.ChildReport{Report: rep}
	if err != nil {
		cr.Error = err.Error()
	}
	if jerr := json.NewEncoder(c.App.Writer).Encode(cr); jerr != nil {
		return jerr
	}
	return exitFor(rep, err)
}

// reportOutcome prints a pass's report a line per secret and turns it into
// the contract's exit code.
func reportOutcome(w io.Writer, rep *engine.Report, err error) error {
	if rep != nil {
		for _, o := range rep.Outcomes {
			line := fmt.Sprintf("%s: %s", o.Name, o.State)
			if o.Note != "" {
				line += " (" + o.Note + ")"
			}
			if o.Class != "" {
				line += " (" + o.Class + ")"
			}
			if o.Error != "" {
				line += ": " + o.Error
			}
			fmt.Fprintln(w, line)
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
			if c.Bool("json") {
				err = status.JSON(c.App.Writer, st)
			} else {
				err = status.Human(c.App.Writer, st, time.Now(), e.home)
			}
			if err != nil {
				return err
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
			st, err := status.Load(status.Dir(home))
			if err != nil {
				fmt.Fprintln(c.App.Writer, "egoagent: state unreadable, run egoagent status")
				return nil
			}
			fmt.Fprintln(c.App.Writer, status.Metadata(st, time.Now()))
			return nil
		},
	}
}
