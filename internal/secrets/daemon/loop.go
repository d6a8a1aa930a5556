package daemon

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"

	"github.com/veraticus/egoengine/internal/health/statedir"
	"github.com/veraticus/egoengine/internal/health/status"
	"github.com/veraticus/egoengine/internal/secrets/config"
	"github.com/veraticus/egoengine/internal/secrets/engine"
)

// ErrRunning means another daemon already serves this state folder.
var ErrRunning = errors.New("an egoagent daemon is already running")

// Runner runs one pass over cfg. It must return soon after ctx ends: the
// daemon stops a pass that way, on SIGTERM and when the pass runs too long.
type Runner interface {
	Run(ctx context.Context, cfg *config.Config, opts engine.Options) (*engine.Report, error)
}

// EngineRunner runs each pass through the engine, as `egoagent sync` does,
// in this process: it opens an engine for the pass's configuration and
// closes it after, which ends the 1Password helper the pass started.
type EngineRunner struct{ Setup engine.Setup }

// Run runs one pass.
func (r EngineRunner) Run(ctx context.Context, cfg *config.Config, opts engine.Options) (*engine.Report, error) {
	eng, err := engine.Open(cfg, r.Setup)
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	return eng.Pass(ctx, opts)
}

// RunnerFunc is a function that is a Runner.
type RunnerFunc func(ctx context.Context, cfg *config.Config, opts engine.Options) (*engine.Report, error)

// Run calls f.
func (f RunnerFunc) Run(ctx context.Context, cfg *config.Config, opts engine.Options) (*engine.Report, error) {
	return f(ctx, cfg, opts)
}

// How long a pass may run, and how long it gets to stop once told to (it
// stops between two secrets) before the daemon gives up waiting for it:
// writes are atomic, so a pass left behind leaves no partial file.
const (
	passTimeout = 2 * time.Minute
	stopGrace   = 2 * time.Second
)

// Daemon is the long-running process. Set the fields, then call Serve.
type Daemon struct {
	ConfigPath  string
	Home        string
	StateDir    string
	Log         *zap.Logger
	Runner      Runner
	InitialPass bool     // run a full pass at once (false when `start` asks for its own)
	LogFile     *LogFile // rotated between passes; nil when logging elsewhere
}

// Serve runs the daemon until ctx ends or SIGTERM/SIGINT arrives (the caller
// arranges the latter through ctx). It returns ErrRunning when another
// daemon holds the state folder.
func (d *Daemon) Serve(ctx context.Context) error {
	if err := statedir.Ensure(d.StateDir); err != nil {
		return err
	}
	// Before the lock: another home's daemon holding it must not read as
	// "already running for this home".
	if st, err := status.Load(d.StateDir); err == nil {
		if err := status.CheckHome(st, d.StateDir, d.Home); err != nil {
			return err
		}
	}
	unlock, err := statedir.LockDaemon(d.StateDir)
	if errors.Is(err, statedir.ErrHeld) {
		return ErrRunning
	}
	if err != nil {
		return err
	}
	defer unlock()

	cur, err := Load(d.ConfigPath, d.Home)
	if err != nil {
		return err
	}
	l, err := listen(d.StateDir)
	if err != nil {
		return err
	}
	defer os.Remove(socketPath(d.StateDir))
	defer l.Close()
	s, err := newServer(d, cur)
	if err != nil {
		return err
	}
	defer s.watcher.Close()
	go s.accept(ctx, l)
	d.Log.Info("daemon started", zap.Int("pid", s.info.PID), zap.String("config", cur.Path), zap.String("schedule", cur.Config.Schedule.Refresh))
	return s.loop(ctx)
}

// server is the daemon's state, owned by the goroutine in loop.
type server struct {
	*Daemon
	cur     *Loaded
	fp      *statedir.Fingerprinter
	plan    *Planner
	watcher *fsnotify.Watcher
	rng     *rand.Rand
	calls   chan call
	info    status.Daemon

	queue    queue
	running  *pass
	dirty    map[string]time.Time // secret → when to judge its file events
	files    map[string]string    // secret → its file, as the passes reported it
	reloadAt time.Time
}

// pass is the pass running now.
type pass struct {
	*job
	cancel context.CancelFunc
	done   chan result // this pass's own: a pass given up on cannot answer for the next
	giveUp time.Time   // when to stop waiting for it
}

type result struct {
	rep *engine.Report
	err error
}

func newServer(d *Daemon, cur *Loaded) (*server, error) {
	fp, err := statedir.NewFingerprinter(d.StateDir)
	if err != nil {
		return nil, err
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("cannot watch files: %w", err)
	}
	s := &server{
		Daemon: d, cur: cur, fp: fp, watcher: w,
		rng:   rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid()))),
		calls: make(chan call),
		dirty: map[string]time.Time{},
		files: map[string]string{},
		info:  status.Daemon{PID: os.Getpid(), Home: status.HomeID(d.Home), Started: time.Now(), ConfigFile: cur.Path},
	}
	s.plan = NewPlanner(cur.Config, time.Now(), s.rng)
	if d.InitialPass {
		s.plan.RunAll(status.TriggerDaemonStart)
	}
	s.rewatch()
	return s, nil
}

func (s *server) loop(ctx context.Context) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()

	for {
		s.judge(time.Now())
		s.startNext()
		s.saveInfo()
		timer.Reset(s.wait())

		var done chan result // nil, which never receives, when no pass runs
		if s.running != nil {
			done = s.running.done
		}
		select {
		case <-ctx.Done():
			return s.shutdown()
		case <-timer.C:
			s.tick()
		case ev := <-s.watcher.Events:
			s.fileEvent(ev)
		case err := <-s.watcher.Errors:
			s.Log.Warn("file watch error", zap.Error(err))
		case c := <-s.calls:
			s.handle(c)
		case <-hup:
			s.Log.Info("SIGHUP: reloading the config")
			s.reload()
		case r := <-done:
			s.finish(r)
		}
	}
}

// wait returns how long to sleep until the next planned thing.
func (s *server) wait() time.Duration {
	next := s.plan.Next()
	var giveUp time.Time
	if s.running != nil {
		giveUp = s.running.giveUp
	}
	for _, t := range []time.Time{s.reloadAt, s.nextJudge(), giveUp} {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if next.IsZero() {
		return time.Hour
	}
	return max(time.Until(next), time.Millisecond)
}

func (s *server) tick() {
	now := time.Now()
	if s.running != nil && !now.Before(s.running.giveUp) {
		// Its source is stuck where it cannot see its context (a read that
		// never returns). Nothing is half written; the next pass waits for
		// the pass lock, which the stuck one holds until its read returns.
		s.Log.Error("the running pass did not stop after its timeout; giving up on it", zap.Duration("timeout", passTimeout))
		s.finish(result{err: fmt.Errorf("the pass was abandoned after running past its timeout of %s, stuck waiting on its source; every installed file is as it was", passTimeout)})
	}
	if !s.reloadAt.IsZero() && !now.Before(s.reloadAt) {
		s.reloadAt = time.Time{}
		s.reload()
	}
	for {
		p, ok := s.plan.Due(now)
		if !ok {
			return
		}
		if p.Trigger == status.TriggerSchedule && s.running != nil {
			// A pass still going makes the scheduled one skip: the next
			// tick of the schedule will come soon enough.
			s.Log.Info("scheduled pass skipped: the previous pass is still running")
			continue
		}
		s.queue = append(s.queue, &job{opts: p.options()})
	}
}

// startNext starts the next queued pass if none is running.
func (s *server) startNext() {
	if s.running != nil {
		return
	}
	j := s.queue.take()
	if j == nil {
		return
	}
	if j.opts.Trigger == status.TriggerWatch && len(j.waiters) == 0 {
		// Our own writes show up as file events too; a file that still is
		// what egoagent wrote needs no pass. Not when callers' refreshes
		// were merged in (they have waiters): what they named runs, changed
		// or not.
		j.opts.Names = s.changedByOthers(j.opts.Names)
		if len(j.opts.Names) == 0 {
			s.startNext()
			return
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), passTimeout)
	p := &pass{job: j, cancel: cancel, done: make(chan result, 1), giveUp: time.Now().Add(passTimeout + stopGrace)}
	s.running = p
	cfg := s.cur.Config
	s.Log.Info("pass starting", zap.String("trigger", string(j.opts.Trigger)), zap.Strings("names", j.opts.Names), zap.Bool("force", j.opts.Force))
	go func() {
		rep, err := s.Runner.Run(ctx, cfg, j.opts)
		p.done <- result{rep, err}
	}()
}

func (s *server) finish(r result) {
	p := s.running
	p.cancel()
	s.running = nil
	s.info.Passes++
	now := time.Now()
	if r.err != nil {
		s.Log.Error("pass failed to run", zap.Error(r.err))
	}
	if r.rep != nil {
		s.plan.Observe(r.rep, now)
		s.learnFiles(p.opts, r.rep)
		s.Log.Info("pass finished", zap.String("trigger", string(p.opts.Trigger)), zap.Int("calls", r.rep.Calls), zap.Bool("ok", r.rep.OK()))
	}
	for _, w := range p.waiters {
		resp := Response{}
		if r.err != nil {
			resp.Error = r.err.Error()
		} else {
			resp.Report = only(r.rep, w.names)
		}
		w.reply <- resp
	}
	s.rewatch()
	// The daemon idles for hours between passes: hand back what this one
	// allocated now rather than whenever the scavenger gets round to it.
	debug.FreeOSMemory()
	if s.LogFile != nil {
		if err := s.LogFile.RotateIfLarge(); err != nil {
			s.Log.Warn("cannot rotate the log file", zap.Error(err))
		}
	}
}

// shutdown stops the running pass, and answers everyone still waiting: the
// running pass's callers get its report if it stops in time, the queued
// ones are told the daemon is stopping.
func (s *server) shutdown() error {
	s.Log.Info("stopping")
	var waiters []waiter
	if s.running != nil {
		s.running.cancel()
		select {
		case r := <-s.running.done:
			s.finish(r)
		case <-time.After(stopGrace + time.Second):
			s.Log.Warn("the running pass did not stop in time")
			waiters = s.running.waiters
		}
	}
	for _, w := range append(waiters, s.queue.drain()...) {
		w.reply <- Response{Error: ErrStopping.Error()}
	}
	s.info.Next = nil
	s.saveInfo()
	return nil
}

// reload swaps in a new configuration, or keeps the old one and says why.
func (s *server) reload() {
	next, err := Load(s.ConfigPath, s.Home)
	if err != nil {
		s.info.ConfigError = err.Error()
		s.Log.Error("the new config is broken; keeping the previous one", zap.Error(err))
		return
	}
	s.info.ConfigError = ""
	s.cur = next
	s.plan = NewPlanner(next.Config, time.Now(), s.rng)
	// A new config may add secrets or fix a reference: try everything now.
	s.plan.RunAll(status.TriggerConfigChange)
	s.rewatch()
	s.Log.Info("config reloaded", zap.String("config", next.Path))
}
