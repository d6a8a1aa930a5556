package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/veraticus/egoengine/internal/health/statedir"
	"github.com/veraticus/egoengine/internal/health/status"
	"github.com/veraticus/egoengine/internal/secrets/config"
	"github.com/veraticus/egoengine/internal/secrets/engine"
)

// fakeRunner stands in for the engine: each pass it is asked for shows up
// on started, and runs until the test ends it with finish (or, when
// honoursStop, until the daemon stops it). Its report has one fresh
// outcome per secret the pass covers.
type fakeRunner struct {
	started     chan engine.Options
	finish      chan struct{}
	honoursStop bool
}

func newFakeRunner() *fakeRunner {
	return &fakeRunner{started: make(chan engine.Options, 10), finish: make(chan struct{})}
}

func (f *fakeRunner) Run(ctx context.Context, cfg *config.Config, opts engine.Options) (*engine.Report, error) {
	f.started <- opts
	rep := &engine.Report{}
	state, class := status.Fresh, engine.ClassStopped
	if f.honoursStop {
		select {
		case <-f.finish:
			class = ""
		case <-ctx.Done():
			state = status.Pending
		}
	} else {
		<-f.finish
		class = ""
	}
	for _, s := range cfg.Secrets {
		if (opts.Names == nil || slices.Contains(opts.Names, s.Name)) && !slices.Contains(opts.Exclude, s.Name) {
			rep.Outcomes = append(rep.Outcomes, engine.Outcome{Name: s.Name, State: state, Class: class, Path: s.Path})
		}
	}
	return rep, nil
}

// pass waits for the next pass to start and returns its options.
func (f *fakeRunner) pass(t *testing.T) engine.Options {
	t.Helper()
	select {
	case o := <-f.started:
		return o
	case <-time.After(5 * time.Second):
		t.Fatal("no pass started")
		return engine.Options{}
	}
}

// idle fails if a pass starts that nobody expected.
func (f *fakeRunner) idle(t *testing.T) {
	t.Helper()
	select {
	case o := <-f.started:
		t.Fatalf("unexpected pass %+v", o)
	case <-time.After(100 * time.Millisecond):
	}
}

// testDaemon is a daemon's loop over three secrets a, b and c, on a
// schedule that never comes due during a test, driven through the same
// channel the control socket uses.
type testDaemon struct {
	s    *server
	stop context.CancelFunc
	done chan struct{} // closed when the loop returns
	err  error         // what it returned
}

func startDaemon(t *testing.T, r Runner) *testDaemon {
	t.Helper()
	s := newTestServer(t, r)
	ctx, stop := context.WithCancel(context.Background())
	td := &testDaemon{s: s, stop: stop, done: make(chan struct{})}
	go func() { td.err = s.loop(ctx); close(td.done) }()
	t.Cleanup(func() {
		stop()
		<-td.done
	})
	return td
}

// newTestServer is the daemon's state over three secrets a, b and c (files
// ~/a/file, ~/b/file, ~/c/file), with no loop running.
func newTestServer(t *testing.T, r Runner) *server {
	t.Helper()
	home := t.TempDir()
	cfg := "[source]\nkind = \"dir\"\ndir = \"~/vault\"\n[schedule]\nrefresh = \"@every 24h\"\njitter = \"0s\"\n"
	for _, n := range []string{"a", "b", "c"} {
		cfg += fmt.Sprintf("[[secret]]\nname = %q\nref = \"op://v/%s/f\"\npath = \"~/%s/file\"\n", n, n, n)
	}
	cfgPath := filepath.Join(home, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &Daemon{ConfigPath: cfgPath, Home: home, StateDir: statedir.Path(home), Log: zap.NewNop(), Runner: r}
	if err := statedir.Ensure(d.StateDir); err != nil {
		t.Fatal(err)
	}
	cur, err := Load(cfgPath, home)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newServer(d, cur)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.watcher.Close() })
	return s
}

// refresh asks for a pass as `egoagent refresh [--force] names...` does,
// and returns where the answer will come. The loop has taken the request
// when refresh returns, and handles it before it takes the next one.
func (td *testDaemon) refresh(force bool, names ...string) <-chan Response {
	reply := make(chan Response, 1)
	td.s.calls <- call{req: Request{Op: OpRefresh, Names: names, Force: force, Home: td.s.Home, Config: td.s.ConfigPath}, reply: reply}
	return reply
}

// settle returns once the loop has handled every request sent before.
func (td *testDaemon) settle(t *testing.T) {
	t.Helper()
	answer(t, td.refresh(false, "no-such-secret")) // answered at once, in turn
}

func answer(t *testing.T, c <-chan Response) Response {
	t.Helper()
	select {
	case r := <-c:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no answer")
		return Response{}
	}
}

func names(r Response) []string {
	var n []string
	if r.Report != nil {
		for _, o := range r.Report.Outcomes {
			n = append(n, o.Name)
		}
	}
	return n
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

// Requests that queue while a pass runs are merged into one pass: the
// second pass covers b, c and a, and each caller gets the outcomes of the
// secrets it named.
func TestRefreshesQueuedBehindAPassMergeIntoOne(t *testing.T) {
	r := newFakeRunner()
	td := startDaemon(t, r)

	first := td.refresh(false, "a")
	if o := r.pass(t); !slices.Equal(o.Names, []string{"a"}) {
		t.Fatalf("first pass: %+v", o)
	}
	b, c, a := td.refresh(false, "b"), td.refresh(false, "c"), td.refresh(false, "a")
	td.settle(t)
	r.finish <- struct{}{}
	if got := names(answer(t, first)); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("first caller got %v", got)
	}

	second := r.pass(t)
	if got := sorted(second.Names); !slices.Equal(got, []string{"a", "b", "c"}) || second.Force {
		t.Fatalf("the queued requests ran as %+v, want one pass over a, b, c", second)
	}
	r.finish <- struct{}{}
	for want, ch := range map[string]<-chan Response{"a": a, "b": b, "c": c} {
		if got := names(answer(t, ch)); !slices.Equal(got, []string{want}) {
			t.Errorf("the caller asking for %s got %v", want, got)
		}
	}
	r.idle(t)
}

// A forced pass is never merged with another, either way: a forced pass
// runs alone, and an unforced one takes in the unforced requests behind it,
// passing over the forced ones, which keep their place.
func TestForcedRefreshRunsOnItsOwn(t *testing.T) {
	r := newFakeRunner()
	td := startDaemon(t, r)

	td.refresh(false, "a")
	r.pass(t)
	replies := []<-chan Response{td.refresh(true, "c"), td.refresh(false, "b"), td.refresh(false, "a"), td.refresh(true, "c")}
	td.settle(t)
	r.finish <- struct{}{}

	want := []engine.Options{
		{Trigger: status.TriggerRefresh, Names: []string{"c"}, Force: true},
		{Trigger: status.TriggerRefresh, Names: []string{"a", "b"}},
		{Trigger: status.TriggerRefresh, Names: []string{"c"}, Force: true},
	}
	for i, w := range want {
		got := r.pass(t)
		if got.Force != w.Force || !slices.Equal(sorted(got.Names), w.Names) {
			t.Fatalf("pass %d after the first: %+v, want %+v", i+1, got, w)
		}
		r.finish <- struct{}{}
	}
	for i, ch := range replies {
		if resp := answer(t, ch); resp.Error != "" || len(names(resp)) != 1 {
			t.Errorf("caller %d: %+v", i, resp)
		}
	}
	r.idle(t)
}

// When the daemon stops, every caller still waiting gets an answer: the
// running pass is stopped, and its callers get its report (the secrets it
// did not reach are pending, class stopped); the callers whose pass never
// started are told the daemon is stopping.
func TestStoppingAnswersEveryWaiter(t *testing.T) {
	r := newFakeRunner()
	r.honoursStop = true
	td := startDaemon(t, r)

	running := td.refresh(false, "a")
	r.pass(t)
	queued := td.refresh(false, "b")
	td.settle(t)
	td.stop()

	resp := answer(t, running)
	if resp.Error != "" || resp.Report == nil || len(resp.Report.Outcomes) != 1 || resp.Report.Outcomes[0].Class != engine.ClassStopped {
		t.Fatalf("the running pass's caller got %+v", resp)
	}
	if resp := answer(t, queued); resp.Error != ErrStopping.Error() {
		t.Fatalf("the queued caller got %+v", resp)
	}
	if <-td.done; td.err != nil {
		t.Fatal(td.err)
	}
	r.idle(t)
}

// A pass that does not stop when told to (a source stuck in a read) does
// not keep the daemon: after stopGrace and a second, its callers are told
// the daemon is stopping, and the loop returns.
func TestStoppingDoesNotWaitForAStuckPass(t *testing.T) {
	r := newFakeRunner()
	td := startDaemon(t, r)
	t.Cleanup(func() { close(r.finish) })

	running := td.refresh(false, "a")
	r.pass(t)
	queued := td.refresh(false, "b")
	td.settle(t)
	begin := time.Now()
	td.stop()
	for _, ch := range []<-chan Response{running, queued} {
		if resp := answer(t, ch); resp.Error != ErrStopping.Error() {
			t.Fatalf("got %+v", resp)
		}
	}
	if <-td.done; td.err != nil {
		t.Fatal(td.err)
	}
	if took := time.Since(begin); took > stopGrace+2*time.Second {
		t.Fatalf("stopping took %s", took)
	}
}

// The files to watch come from the passes' reports: a mirrored Document's
// folder, which the config does not name, is watched once a pass reports
// its file.
func TestWatchesWhatThePassReports(t *testing.T) {
	doc := ""
	td := startDaemon(t, RunnerFunc(func(ctx context.Context, cfg *config.Config, opts engine.Options) (*engine.Report, error) {
		return &engine.Report{Outcomes: []engine.Outcome{{Name: "home/.ssh/config", State: status.Fresh, Path: doc}}}, nil
	}))
	doc = filepath.Join(td.s.Home, ".ssh", "config")
	if err := os.MkdirAll(filepath.Dir(doc), 0o700); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(td.s.watcher.WatchList(), filepath.Dir(doc)) {
		t.Fatal("watched before any pass")
	}
	answer(t, td.refresh(false))
	if !slices.Contains(td.s.watcher.WatchList(), filepath.Dir(doc)) {
		t.Fatalf("%s not watched after a pass reported it; watching %v", filepath.Dir(doc), td.s.watcher.WatchList())
	}
}

// What a caller names its pass is recorded in the state file and shown by
// status: only the triggers a caller may claim are taken.
func TestRefreshTakesOnlyACallersTrigger(t *testing.T) {
	r := newFakeRunner()
	td := startDaemon(t, r)
	for _, trigger := range []status.Trigger{status.TriggerSchedule, "start\n\x1b[2J"} {
		reply := make(chan Response, 1)
		td.s.calls <- call{req: Request{Op: OpRefresh, Trigger: trigger, Home: td.s.Home, Config: td.s.ConfigPath}, reply: reply}
		if resp := answer(t, reply); !resp.Usage || resp.Report != nil {
			t.Fatalf("trigger %q: %+v", trigger, resp)
		}
	}
	r.idle(t)
	reply := make(chan Response, 1)
	td.s.calls <- call{req: Request{Op: OpRefresh, Trigger: status.TriggerStart, Home: td.s.Home, Config: td.s.ConfigPath}, reply: reply}
	if o := r.pass(t); o.Trigger != status.TriggerStart {
		t.Fatalf("start's pass ran as %+v", o)
	}
	r.finish <- struct{}{}
	answer(t, reply)
}

// A refresh merged into a pass the watcher asked for runs what the caller
// named, though the watcher would drop a file that still is what egoagent
// wrote.
func TestARefreshMergedIntoAWatchPassKeepsItsSecrets(t *testing.T) {
	r := newFakeRunner()
	s := newTestServer(t, r)
	// b's file is what egoagent last wrote; a's has no record.
	b := filepath.Join(s.Home, "b", "file")
	if err := os.MkdirAll(filepath.Dir(b), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b, []byte("b1"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := status.Save(s.StateDir, &status.State{Secrets: []status.Secret{{Name: "b", Path: b, Written: s.fp.Sum([]byte("b1"))}}}); err != nil {
		t.Fatal(err)
	}

	reply := make(chan Response, 1)
	s.queue = queue{
		{opts: engine.Options{Trigger: status.TriggerWatch, Names: []string{"a", "b"}}},
		{opts: engine.Options{Trigger: status.TriggerRefresh, Names: []string{"b"}}, waiters: []waiter{{names: []string{"b"}, reply: reply}}},
	}
	s.startNext()
	if o := r.pass(t); !slices.Contains(o.Names, "b") {
		t.Fatalf("the pass ran as %+v: the caller's b was dropped", o)
	}
	close(r.finish)
	s.finish(<-s.running.done)
	if got := names(answer(t, reply)); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("the caller got %v", got)
	}

	// Alone, the watcher's pass leaves b out.
	s.queue = queue{{opts: engine.Options{Trigger: status.TriggerWatch, Names: []string{"a", "b"}}}}
	s.startNext()
	if o := r.pass(t); !slices.Equal(o.Names, []string{"a"}) {
		t.Fatalf("the watcher's pass ran as %+v, want a alone", o)
	}
	s.finish(<-s.running.done)
}
