package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veraticus/egoengine/internal/health/statedir"
)

// The ways a daemon can end a connection, as a stand-in daemon plays them.
var (
	// resetIt closes without reading the request: the kernel resets the
	// connection, as when a killed daemon's files are closed.
	resetIt = func(c net.Conn) { c.Close() }
	// hangUp reads the request and closes: the caller reads an EOF.
	hangUp = func(c net.Conn) {
		json.NewDecoder(c).Decode(&Request{})
		c.Close()
	}
	// halfAnswer sends part of an answer and closes.
	halfAnswer = func(c net.Conn) {
		json.NewDecoder(c).Decode(&Request{})
		io.WriteString(c, `{"error":"the`)
		c.Close()
	}
	// garbage answers whole, but not with JSON.
	garbage = func(c net.Conn) {
		json.NewDecoder(c).Decode(&Request{})
		io.WriteString(c, "<html>\n")
		c.Close()
	}
	// answerIt answers properly.
	answerIt = func(c net.Conn) {
		json.NewDecoder(c).Decode(&Request{})
		json.NewEncoder(c).Encode(Response{Error: "answered"})
		c.Close()
	}
)

// standIn is a daemon's control socket served by the test: the n-th
// connection is handled by conns[n] (the last one repeats). It counts the
// connections it took.
type standIn struct {
	l     net.Listener
	mu    sync.Mutex
	taken int
}

func serveStandIn(t *testing.T, dir string, conns ...func(net.Conn)) *standIn {
	t.Helper()
	l, err := listen(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := &standIn{l: l}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			handle := conns[min(s.taken, len(conns)-1)]
			s.taken++
			s.mu.Unlock()
			handle(c)
		}
	}()
	return s
}

func (s *standIn) connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.taken
}

// shortStateDir is a state folder whose socket path fits sun_path whatever
// the test's name.
func shortStateDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "egoc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func holdDaemonLock(t *testing.T, dir string) (release func()) {
	t.Helper()
	unlock, err := statedir.LockDaemon(dir)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(unlock) }
	t.Cleanup(release)
	return release
}

func callSoon(t *testing.T, dir string) (*Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return Call(ctx, dir, Request{Op: OpStatus})
}

// A daemon that drops the connection and holds no lock is one that died
// as it was reached: the caller hears that no daemon runs, whatever the
// way it went.
func TestCallToADaemonThatDiedIsNoDaemon(t *testing.T) {
	for name, drop := range map[string]func(net.Conn){"reset": resetIt, "hang up": hangUp, "half an answer": halfAnswer} {
		t.Run(name, func(t *testing.T) {
			dir := shortStateDir(t)
			serveStandIn(t, dir, drop)
			if resp, err := callSoon(t, dir); !errors.Is(err, ErrNoDaemon) {
				t.Fatalf("got %+v, %v; want ErrNoDaemon", resp, err)
			}
		})
	}
}

// A killed daemon's lock goes a moment after its socket: the caller waits
// for it rather than report a failure.
func TestCallWaitsForADyingDaemonsLock(t *testing.T) {
	dir := shortStateDir(t)
	release := holdDaemonLock(t, dir)
	serveStandIn(t, dir, func(c net.Conn) {
		resetIt(c)
		time.AfterFunc(20*time.Millisecond, release)
	})
	if resp, err := callSoon(t, dir); !errors.Is(err, ErrNoDaemon) {
		t.Fatalf("got %+v, %v; want ErrNoDaemon", resp, err)
	}
}

// A daemon that still holds its lock gets a second try, and its answer
// counts.
func TestCallTriesALiveDaemonAgain(t *testing.T) {
	dir := shortStateDir(t)
	holdDaemonLock(t, dir)
	s := serveStandIn(t, dir, resetIt, answerIt)
	resp, err := callSoon(t, dir)
	if err != nil || resp.Error != "answered" {
		t.Fatalf("got %+v, %v; want the second connection's answer", resp, err)
	}
	if n := s.connections(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

// A live daemon that drops the connection every time is reported after the
// second try, with what to do about it.
func TestCallReportsADaemonThatNeverAnswers(t *testing.T) {
	dir := shortStateDir(t)
	holdDaemonLock(t, dir)
	s := serveStandIn(t, dir, hangUp)
	_, err := callSoon(t, dir)
	if err == nil || errors.Is(err, ErrNoDaemon) {
		t.Fatalf("got %v; want the daemon's failure", err)
	}
	for _, want := range []string{"twice without answering", "still holds its lock", dir + "/" + statedir.LogFile, "egoagent start"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q: %v", want, err)
		}
	}
	if n := s.connections(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

// An answer that came whole but is not one is the daemon's error, not a
// death: no second try, even without the lock.
func TestCallReportsABadAnswerOnce(t *testing.T) {
	dir := shortStateDir(t)
	s := serveStandIn(t, dir, garbage)
	_, err := callSoon(t, dir)
	if err == nil || !strings.Contains(err.Error(), "bad answer from the daemon") {
		t.Fatalf("got %v; want a bad answer", err)
	}
	if n := s.connections(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
}

func TestCallWithNoSocketIsNoDaemon(t *testing.T) {
	dir := shortStateDir(t)
	if _, err := callSoon(t, dir); !errors.Is(err, ErrNoDaemon) {
		t.Fatalf("got %v; want ErrNoDaemon", err)
	}
	// A socket file left by a killed daemon: nothing listens on it.
	l, err := listen(dir)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if _, err := callSoon(t, dir); !errors.Is(err, ErrNoDaemon) {
		t.Fatalf("got %v; want ErrNoDaemon", err)
	}
}

// start meets a daemon that dies as it is reached: it starts another one
// and gets that one's answer, as when none ran.
func TestCallStartingReplacesADaemonThatDied(t *testing.T) {
	dir := shortStateDir(t)
	dying := serveStandIn(t, dir, resetIt)
	spawns := 0
	spawn := func() error {
		spawns++
		dying.l.Close()
		serveStandIn(t, dir, answerIt)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := CallStarting(ctx, dir, spawn, Request{Op: OpStatus})
	if err != nil || resp.Error != "answered" {
		t.Fatalf("got %+v, %v; want the new daemon's answer", resp, err)
	}
	if spawns != 1 {
		t.Fatalf("%d spawns, want 1", spawns)
	}
}

// A daemon that keeps dying before it answers is started at most twice.
func TestCallStartingGivesUpOnADaemonThatKeepsDying(t *testing.T) {
	dir := shortStateDir(t)
	spawns := 0
	var last *standIn
	spawn := func() error {
		spawns++
		if last != nil {
			last.l.Close()
		}
		// It takes the lock and opens its socket, then dies on the call.
		release := holdDaemonLock(t, dir)
		last = serveStandIn(t, dir, func(c net.Conn) { release(); resetIt(c) })
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := CallStarting(ctx, dir, spawn, Request{Op: OpStatus})
	if err == nil || !strings.Contains(err.Error(), "died 2 times") {
		t.Fatalf("got %v; want it to give up", err)
	}
	if spawns != maxSpawns {
		t.Fatalf("%d spawns, want %d", spawns, maxSpawns)
	}
}

// A daemon that never comes up is given up on once startWait has passed.
func TestCallStartingGivesUpOnADaemonThatNeverStarts(t *testing.T) {
	dir := shortStateDir(t)
	spawns := 0
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := CallStarting(ctx, dir, func() error { spawns++; return nil }, Request{Op: OpStatus})
	if err == nil || err.Error() != "the daemon did not start" || spawns != 1 {
		t.Fatalf("got %v after %d spawns; want one spawn, then 'did not start'", err, spawns)
	}
}
