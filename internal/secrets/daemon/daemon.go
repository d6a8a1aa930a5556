// Package daemon keeps secrets fresh over weeks of uptime: it runs passes on
// the cron schedule, when a written file is deleted or rewritten, when the
// config changes, and when someone asks over the control socket.
//
// Each pass runs in a short-lived child process (see ChildRunner), which in
// turn reaches 1Password through the helper egoagent-op. The SDK costs
// about 160 MB that is never given back once loaded; none of it lives in
// the long-lived process, which stays at a few MB.
// One goroutine owns all of the daemon's state; everything else (the
// socket, the watcher, the running pass) talks to it over channels.
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"

	"github.com/veraticus/egoengine/internal/health/statedir"
	"github.com/veraticus/egoengine/internal/health/status"
	"github.com/veraticus/egoengine/internal/secrets/config"
	"github.com/veraticus/egoengine/internal/secrets/engine"
	"github.com/veraticus/egoengine/internal/secrets/secretfile"
)

// ErrRunning means another daemon already serves this state folder.
var ErrRunning = errors.New("an egoagent daemon is already running")

// Loaded is a configuration together with the bytes it came from, so that
// a pass in a child process sees exactly the configuration the daemon
// runs on, even after the file on disk was broken by an edit.
type Loaded struct {
	Path   string
	Data   []byte
	Config *config.Config
}

// Load reads and validates the configuration file at path.
func Load(path, home string) (*Loaded, error) {
	data, err := config.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cfg, err := config.Parse(path, data, config.Env{Home: home, StateDir: statedir.Path(home)})
	if err != nil {
		return nil, err
	}
	return &Loaded{Path: path, Data: data, Config: cfg}, nil
}

// Runner runs one pass.
type Runner interface {
	Run(ctx context.Context, cfg *Loaded, opts engine.Options) (*engine.Report, error)
}

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

// job is a pass to run and the callers waiting for its report.
type job struct {
	opts    engine.Options
	force   bool
	waiters []waiter
}

type waiter struct {
	names []string
	reply chan<- Response
}

type call struct {
	req   Request
	reply chan Response
}

type result struct {
	rep *engine.Report
	err error
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
	fp, err := statedir.NewFingerprinter(d.StateDir)
	if err != nil {
		return err
	}
	l, err := listen(d.StateDir)
	if err != nil {
		return err
	}
	defer os.Remove(socketPath(d.StateDir))
	defer l.Close()
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("cannot watch files: %w", err)
	}
	defer w.Close()

	s := &server{
		Daemon: d, cur: cur, fp: fp, watcher: w,
		rng:   rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid()))),
		calls: make(chan call),
		dirty: map[string]time.Time{},
		done:  make(chan result, 1),
		info:  status.Daemon{PID: os.Getpid(), Home: status.HomeID(d.Home), Started: time.Now(), ConfigFile: cur.Path},
	}
	s.plan = NewPlanner(cur.Config, time.Now(), s.rng)
	if d.InitialPass {
		s.plan.RunAll("daemon start")
	}
	s.rewatch()
	go s.accept(ctx, l)
	d.Log.Info("daemon started", zap.Int("pid", s.info.PID), zap.String("config", cur.Path), zap.String("schedule", cur.Config.Schedule.Refresh))
	return s.loop(ctx)
}

type server struct {
	*Daemon
	cur     *Loaded
	fp      *statedir.Fingerprinter
	plan    *Planner
	watcher *fsnotify.Watcher
	rng     *rand.Rand
	calls   chan call
	done    chan result
	info    status.Daemon

	queue    []*job
	running  *job
	dirty    map[string]time.Time // secret → when to judge its file events
	cancel   context.CancelFunc
	reloadAt time.Time
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
		case r := <-s.done:
			s.finish(r)
		}
	}
}

// wait returns how long to sleep until the next planned thing.
func (s *server) wait() time.Duration {
	next := s.plan.Next()
	for _, t := range []time.Time{s.reloadAt, s.nextJudge()} {
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
	if !s.reloadAt.IsZero() && !now.Before(s.reloadAt) {
		s.reloadAt = time.Time{}
		s.reload()
	}
	for {
		p, ok := s.plan.Due(now)
		if !ok {
			return
		}
		if p.Trigger == "schedule" && s.running != nil {
			// A pass still going makes the scheduled one skip: the next
			// tick of the schedule will come soon enough.
			s.Log.Info("scheduled pass skipped: the previous pass is still running")
			continue
		}
		s.queue = append(s.queue, &job{opts: p.options()})
	}
}

// handle answers a control-socket request.
func (s *server) handle(c call) {
	if err := s.serves(c.req); err != nil {
		c.reply <- Response{Error: err.Error(), Usage: true}
		return
	}
	switch c.req.Op {
	case "status":
		st, err := status.Load(s.StateDir)
		if err != nil {
			c.reply <- Response{Error: err.Error()}
			return
		}
		c.reply <- Response{State: st}
	case "refresh":
		if err := engine.CheckNames(s.cur.Config, c.req.Names); err != nil {
			c.reply <- Response{Error: err.Error(), Usage: true}
			return
		}
		trigger := c.req.Trigger
		if trigger == "" {
			trigger = "refresh"
		}
		s.queue = append(s.queue, &job{
			opts:    engine.Options{Trigger: trigger, Names: c.req.Names, Force: c.req.Force},
			force:   c.req.Force,
			waiters: []waiter{{names: c.req.Names, reply: c.reply}},
		})
	default:
		c.reply <- Response{Error: fmt.Sprintf("unknown request %q", c.req.Op), Usage: true}
	}
}

// serves reports an error unless req comes from the home and names the
// configuration this daemon serves.
func (s *server) serves(req Request) error {
	if req.Home == "" || req.Config == "" {
		return errors.New("the request does not say which home and configuration it is for; use the egoagent binary that started this daemon")
	}
	if id := status.HomeID(req.Home); id != s.info.Home {
		return &status.ForeignError{Dir: statedir.Path(req.Home), Owner: s.info.Home, Home: id, PID: s.info.PID}
	}
	if !sameFile(req.Config, s.cur.Path) {
		return fmt.Errorf("the running daemon (pid %d) uses the configuration %s, not %s; run egoagent with --config %s (or EGOAGENT_CONFIG), or stop the daemon (kill %d) and run egoagent start with the configuration you want", s.info.PID, s.cur.Path, req.Config, s.cur.Path, s.info.PID)
	}
	return nil
}

func sameFile(a, b string) bool {
	if a == b {
		return true
	}
	fa, erra := os.Stat(a)
	fb, errb := os.Stat(b)
	return erra == nil && errb == nil && os.SameFile(fa, fb)
}

// startNext starts the next queued pass if none is running. Requests that
// queued up behind a running pass are merged into one pass, so twenty
// people asking at once cost one trip to 1Password, not twenty. A forced
// refresh runs on its own, so that --force never spreads to secrets nobody
// named.
func (s *server) startNext() {
	if s.running != nil || len(s.queue) == 0 {
		return
	}
	j := s.queue[0]
	rest := s.queue[1:]
	if !j.force {
		keep := rest[:0]
		for _, o := range rest {
			if o.force {
				keep = append(keep, o)
				continue
			}
			j.opts.Names, j.opts.Exclude = merge(j.opts, o.opts)
			j.waiters = append(j.waiters, o.waiters...)
		}
		rest = keep
	}
	s.queue = rest
	if j.opts.Trigger == "watch" {
		// Our own writes show up as file events too; a file that still is
		// what egoagent wrote needs no pass.
		j.opts.Names = s.changedByOthers(j.opts.Names)
		if len(j.opts.Names) == 0 && len(j.waiters) == 0 {
			s.startNext()
			return
		}
	}
	s.running = j
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	cur := s.cur
	s.Log.Info("pass starting", zap.String("trigger", j.opts.Trigger), zap.Strings("names", j.opts.Names), zap.Bool("force", j.opts.Force))
	go func() {
		rep, err := s.Runner.Run(ctx, cur, j.opts)
		s.done <- result{rep, err}
	}()
}

// merge combines the secrets two passes cover. Names nil means "all but
// Exclude".
func merge(a, b engine.Options) (names, exclude []string) {
	switch {
	case a.Names == nil && b.Names == nil:
		for _, n := range a.Exclude {
			if slices.Contains(b.Exclude, n) {
				exclude = append(exclude, n)
			}
		}
		return nil, exclude
	case a.Names == nil:
		return nil, without(a.Exclude, b.Names)
	case b.Names == nil:
		return nil, without(b.Exclude, a.Names)
	default:
		names = slices.Clone(a.Names)
		for _, n := range b.Names {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
		return names, nil
	}
}

func without(list, drop []string) []string {
	var out []string
	for _, n := range list {
		if !slices.Contains(drop, n) {
			out = append(out, n)
		}
	}
	return out
}

func (s *server) finish(r result) {
	j := s.running
	s.running, s.cancel = nil, nil
	s.info.Passes++
	now := time.Now()
	if r.err != nil {
		s.Log.Error("pass failed to run", zap.Error(r.err))
	} else {
		s.plan.Observe(r.rep, now)
		s.Log.Info("pass finished", zap.String("trigger", j.opts.Trigger), zap.Int("calls", r.rep.Calls), zap.Bool("ok", r.rep.OK()))
	}
	for _, w := range j.waiters {
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

// only narrows a report to the named secrets.
func only(rep *engine.Report, names []string) *engine.Report {
	if len(names) == 0 {
		return rep
	}
	out := &engine.Report{Calls: rep.Calls}
	for _, o := range rep.Outcomes {
		if slices.Contains(names, o.Name) {
			out.Outcomes = append(out.Outcomes, o)
		}
	}
	return out
}

func (s *server) shutdown() error {
	s.Log.Info("stopping")
	var waiters []waiter
	if s.running != nil {
		s.cancel()
		select {
		case r := <-s.done:
			s.finish(r)
		case <-time.After(stopGrace + time.Second):
			s.Log.Warn("the running pass did not stop in time")
			waiters = s.running.waiters
		}
	}
	for _, w := range append(waiters, s.queueWaiters()...) {
		w.reply <- Response{Error: "the daemon is stopping"}
	}
	s.info.Next = nil
	s.saveInfo()
	return nil
}

func (s *server) queueWaiters() []waiter {
	var ws []waiter
	for _, j := range s.queue {
		ws = append(ws, j.waiters...)
	}
	s.queue = nil
	return ws
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
	s.plan.RunAll("config change")
	s.rewatch()
	s.Log.Info("config reloaded", zap.String("config", next.Path))
}

// saveInfo writes daemon.json when it changed.
func (s *server) saveInfo() {
	next, why := map[string]time.Time{}, map[string]string{}
	for _, sec := range s.cur.Config.Secrets {
		next[sec.Name], why[sec.Name] = s.plan.NextRefresh(sec.Name)
	}
	s.info.Next, s.info.Why = next, why
	s.info.HoldUntil = s.plan.HoldUntil()
	if err := status.SaveDaemon(s.StateDir, &s.info); err != nil {
		s.Log.Warn("cannot save the daemon's state", zap.Error(err))
	}
}

// rewatch watches the config file's folder and every secret file's folder.
// Folders are watched rather than files because editors and egoagent
// itself replace files by rename, which ends a watch on the old file.
func (s *server) rewatch() {
	want := map[string]bool{filepath.Dir(s.cur.Path): true}
	for _, sec := range s.cur.Config.Secrets {
		want[filepath.Dir(sec.Path)] = true
	}
	if st, err := status.Load(s.StateDir); err == nil {
		for _, sec := range st.Secrets {
			if sec.Path != "" {
				want[filepath.Dir(sec.Path)] = true
			}
		}
	}
	have := map[string]bool{}
	for _, p := range s.watcher.WatchList() {
		have[p] = true
		if !want[p] {
			s.watcher.Remove(p)
		}
	}
	for p := range want {
		if !have[p] {
			// A folder that does not exist yet is added after the pass that creates it.
			s.watcher.Add(p)
		}
	}
}

func (s *server) fileEvent(ev fsnotify.Event) {
	if ev.Name == s.cur.Path || (ev.Name == s.ConfigPath) {
		s.reloadAt = time.Now().Add(200 * time.Millisecond)
		return
	}
	if ev.Has(fsnotify.Chmod) && !ev.Has(fsnotify.Write) {
		return
	}
	name := s.secretAt(ev.Name)
	if name == "" || strings.Contains(filepath.Base(ev.Name), ".egoagent-tmp-") {
		return
	}
	// Judged later, not now: the event may be egoagent's own write, whose
	// fingerprint the state has only once the pass that wrote it is over.
	s.dirty[name] = time.Now().Add(watchDebounce)
}

// judge turns file events into watch passes once no pass is running and
// the files have had a moment to settle: only a file that is no longer
// what egoagent last wrote (deleted, replaced, rewritten by its consumer)
// gets a pass and counts against the watch limits. egoagent's own writes
// never do.
func (s *server) judge(now time.Time) {
	if s.running != nil {
		return
	}
	var ready []string
	for name, at := range s.dirty {
		if !at.After(now) {
			ready = append(ready, name)
			delete(s.dirty, name)
		}
	}
	if len(ready) == 0 {
		return // the common case: no state file to read
	}
	for _, name := range s.changedByOthers(ready) {
		if due := s.plan.Touch(name, now); due.Sub(now) > watchMinGap {
			s.Log.Warn("file keeps changing; its next pass waits", zap.String("secret", name), zap.Time("at", due))
		}
	}
}

// nextJudge is when judge has something to do, or zero.
func (s *server) nextJudge() time.Time {
	var next time.Time
	if s.running != nil {
		return next
	}
	for _, at := range s.dirty {
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return next
}

// secretAt returns the name of the secret written to path, if any.
func (s *server) secretAt(path string) string {
	for _, sec := range s.cur.Config.Secrets {
		if sec.Path == path {
			return sec.Name
		}
	}
	if st, err := status.Load(s.StateDir); err == nil {
		for _, sec := range st.Secrets {
			if sec.Path == path {
				return sec.Name
			}
		}
	}
	return ""
}

// changedByOthers keeps the names whose file no longer is what egoagent
// last wrote (changed, deleted, replaced).
func (s *server) changedByOthers(names []string) []string {
	st, err := status.Load(s.StateDir)
	if err != nil {
		return names
	}
	var out []string
	for _, n := range names {
		sec := st.Find(n)
		if sec == nil {
			out = append(out, n)
			continue
		}
		data, exists, err := secretfile.Read(sec.Path)
		if err != nil || !exists || s.fp.Sum(data) != sec.Written {
			out = append(out, n)
		}
	}
	return out
}

// accept serves the control socket until the listener closes. Each
// connection gets its own goroutine, which hands the request to the loop
// and waits for the answer.
func (s *server) accept(ctx context.Context, l net.Listener) {
	for {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			if !peerIsOwner(conn) {
				s.Log.Warn("control socket: refused a connection from another user")
				return
			}
			var req Request
			if err := json.NewDecoder(conn).Decode(&req); err != nil {
				json.NewEncoder(conn).Encode(Response{Error: "bad request: " + err.Error(), Usage: true})
				return
			}
			reply := make(chan Response, 1)
			select {
			case s.calls <- call{req: req, reply: reply}:
			case <-ctx.Done():
				json.NewEncoder(conn).Encode(Response{Error: "the daemon is stopping"})
				return
			}
			json.NewEncoder(conn).Encode(<-reply)
		}()
	}
}
