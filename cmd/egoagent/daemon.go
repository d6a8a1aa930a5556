package main

import (
	"context"
	"errors"
	"fmt"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/veraticus/egoengine/internal/health/statedir"
	"github.com/veraticus/egoengine/internal/health/status"
	"github.com/veraticus/egoengine/internal/secrets/config"
	"github.com/veraticus/egoengine/internal/secrets/daemon"
	"github.com/veraticus/egoengine/internal/secrets/engine"
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "the daemon, in the foreground: refresh on schedule, watch files, serve refresh and status",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "no-initial-pass", Usage: "do not run a pass at once (egoagent start asks for its own)", Hidden: true},
			&cli.StringFlag{Name: "log-file", Usage: "send all output to this file and rotate it (egoagent start sets it)", Hidden: true},
		},
		Action: func(c *cli.Context) error {
			var lf *daemon.LogFile
			if p := c.String("log-file"); p != "" {
				lf = &daemon.LogFile{Path: p, MaxSize: daemon.DefaultLogSize}
				if err := lf.Redirect(); err != nil {
					return err
				}
			}
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			d := &daemon.Daemon{
				ConfigPath:  e.configPath(),
				Home:        e.home,
				StateDir:    e.stateDir,
				Log:         e.log,
				Runner:      daemon.EngineRunner{Setup: e.setup()},
				InitialPass: !c.Bool("no-initial-pass"),
				LogFile:     lf,
			}
			err = d.Serve(ctx)
			if errors.Is(err, daemon.ErrRunning) {
				fmt.Fprintln(c.App.Writer, "egoagent: a daemon is already running for this home; nothing to do")
				return nil
			}
			var ce *config.Error
			if errors.As(err, &ce) {
				return usageError{err}
			}
			return err
		},
	}
}

// startCommand is what the workspace runs at start. It must return within
// its deadline whatever 1Password does, and must not hold Coder's output
// pipes: the daemon it leaves behind has its own session and writes only to
// the log file.
func startCommand() *cli.Command {
	return &cli.Command{
		Name:  "start",
		Usage: "at workspace start: ingest every secret (within a deadline), leave the daemon running, return",
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "deadline", Usage: "how long to wait for the first pass (default: schedule.start_deadline, 60s)"},
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
			deadline := cfg.Schedule.StartDeadline
			if c.IsSet("deadline") {
				deadline = c.Duration("deadline")
			}
			ctx, cancel := context.WithTimeout(c.Context, deadline)
			defer cancel()
			if err := statedir.Ensure(e.stateDir); err != nil {
				return err
			}
			if err := daemon.CheckSocket(e.stateDir); err != nil {
				return err
			}
			// Say it here: a daemon spawned on another home's state folder
			// would only refuse to run, into the log.
			if st, err := status.Load(e.stateDir); err == nil {
				if err := checkHome(st, e); err != nil {
					return err
				}
			}
			logPath := filepath.Join(e.stateDir, statedir.LogFile)
			spawn := func() error { return daemon.Spawn(e.configPath(), logPath) }
			req := e.request(daemon.OpRefresh)
			req.Trigger = status.TriggerStart
			resp, err := daemon.CallStarting(ctx, e.stateDir, spawn, req)
			if err != nil {
				if ctx.Err() != nil {
					return cli.Exit(fmt.Sprintf("the first pass did not finish within %s; the daemon carries on (egoagent status shows progress, log: %s)", deadline, logPath), exitFailed)
				}
				return fmt.Errorf("%w (log: %s)", err, logPath)
			}
			return daemonOutcome(c, resp)
		},
	}
}

func refreshCommand() *cli.Command {
	return &cli.Command{
		Name:      "refresh",
		Usage:     "refresh now (through the daemon if one runs) and print each secret's outcome; exit 0 only if all are fresh",
		ArgsUsage: "[NAME...]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Usage: "install 1Password's copy even where the consumer-rewrites policy would keep the local file"},
			&cli.BoolFlag{Name: "renew", Usage: "renew logins configured with renew = true now, before they are due (one workspace renews, the others get its login)"},
			&cli.DurationFlag{Name: "timeout", Usage: "give up after this long", Value: 5 * time.Minute},
		},
		Action: func(c *cli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
			defer cancel()
			req := e.request(daemon.OpRefresh)
			req.Names, req.Force, req.Renew = c.Args().Slice(), c.Bool("force"), c.Bool("renew")
			resp, err := daemon.Call(ctx, e.stateDir, req)
			if errors.Is(err, daemon.ErrNoDaemon) {
				// No daemon: do the pass here, as sync would.
				cfg, err := e.loadConfig()
				if err != nil {
					return err
				}
				eng, err := engine.Open(cfg, e.setup())
				if err != nil {
					return err
				}
				defer eng.Close()
				rep, err := runPass(c.Context, c.Duration("timeout"), eng, engine.Options{Trigger: status.TriggerRefresh, Names: req.Names, Force: req.Force, RenewNow: req.Renew, Wait: true})
				return reportOutcome(c.App.Writer, rep, err)
			}
			if err != nil {
				return err
			}
			return daemonOutcome(c, resp)
		},
	}
}

func daemonOutcome(c *cli.Context, resp *daemon.Response) error {
	if resp.Usage {
		return usageError{errors.New(resp.Error)}
	}
	var err error
	if resp.Error != "" {
		err = errors.New(resp.Error)
	}
	return reportOutcome(c.App.Writer, resp.Report, err)
}
