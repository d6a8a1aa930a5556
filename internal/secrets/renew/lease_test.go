package renew

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// memStore is a store without compare-and-swap, whose reads and writes take
// a random time up to delay each: the last write to land wins.
type memStore struct {
	mu    sync.Mutex
	rec   string
	delay time.Duration
}

func (m *memStore) pause() {
	if m.delay > 0 {
		time.Sleep(time.Duration(rand.Int64N(int64(m.delay))))
	}
}

func (m *memStore) ReadLease(context.Context) (string, error) {
	m.pause()
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rec, nil
}

func (m *memStore) WriteLease(_ context.Context, rec string) error {
	m.pause()
	m.mu.Lock()
	m.rec = rec
	m.mu.Unlock()
	m.pause() // the answer takes its time too
	return nil
}

func claimer(s Store, holder string) *Claimer {
	c := NewClaimer(s, holder)
	c.Bound, c.Settle, c.TTL = 40*time.Millisecond, 50*time.Millisecond, time.Second
	return c
}

// Workspaces that claim the same login at the same moment: one wins,
// whatever the order their reads and writes land in, in every round.
func TestClaimHasOneWinnerAmongManyAtOnce(t *testing.T) {
	for round := range 40 {
		store := &memStore{delay: 8 * time.Millisecond}
		var wg sync.WaitGroup
		verdicts := make([]Verdict, 5)
		start := make(chan struct{})
		for i := range verdicts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				v, _, err := claimer(store, fmt.Sprintf("ws-%d", i)).Claim(context.Background(), "login-1")
				if err != nil {
					t.Error(err)
				}
				verdicts[i] = v
			}()
		}
		close(start)
		wg.Wait()
		won := 0
		for _, v := range verdicts {
			if v == Won {
				won++
			}
		}
		// Slow claims (the store was slower than Bound) win nothing; at
		// most one claim may win, and with this store nearly always one
		// does.
		if won > 1 {
			t.Fatalf("round %d: %d winners: %v", round, won, verdicts)
		}
	}
}

// A claim whose write lands after another workspace read the lease free
// cannot both win: the one that read back too early is the Fischer case
// the settle time exists for.
func TestClaimLateWriterCannotJoinAWinner(t *testing.T) {
	store := &memStore{}
	a := claimer(store, "a")
	v, _, err := a.Claim(context.Background(), "login-1")
	if err != nil || v != Won {
		t.Fatalf("a: %v %v", v, err)
	}
	// b comes after a won, and before a marked anything: a's claim is
	// live, so b is held off.
	if v, l, _ := claimer(store, "b").Claim(context.Background(), "login-1"); v != Held || l.Holder != "a" {
		t.Fatalf("b: %v %+v", v, l)
	}
}

func TestClaimSlowStoreIsNeverTrusted(t *testing.T) {
	store := &memStore{}
	c := claimer(store, "a")
	c.Bound = 0 // any store is too slow
	if v, _, _ := c.Claim(context.Background(), "login-1"); v != Slow {
		t.Fatalf("verdict %v, want slow", v)
	}
	// Its claim still binds others until it expires.
	if v, _, _ := claimer(store, "b").Claim(context.Background(), "login-1"); v != Held {
		t.Fatalf("b: %v, want held", v)
	}
}

func TestClaimAfterARenewerStopped(t *testing.T) {
	at := time.Now()
	clock := func() time.Time { return at }
	for _, tc := range []struct {
		state State
		age   time.Duration // how long after the lease expired
		want  Verdict
	}{
		{Claimed, -time.Millisecond, Held}, // live: another is about to call
		{Claimed, time.Millisecond, Won},   // its holder died before calling: the token is unspent
		{Calling, -time.Millisecond, Held},
		{Calling, time.Millisecond, Unfinished}, // died while calling: the token may be spent
		{Done, time.Hour, Unfinished},
		{Refused, time.Hour, Dead},
		{Free, -time.Hour, Won},
	} {
		store := &memStore{rec: Lease{Holder: "old", Login: "login-1", State: tc.state, Until: at.Add(-tc.age)}.record()}
		c := claimer(store, "new")
		c.Now = clock
		c.Sleep = func(context.Context, time.Duration) error { return nil }
		if v, _, err := c.Claim(context.Background(), "login-1"); v != tc.want || err != nil {
			t.Errorf("%s, %v past: %v %v, want %v", tc.state, tc.age, v, err, tc.want)
		}
	}
	// A claim that says it lasts a year is not believed: it cannot hold
	// the renewal off, and one that says it is calling is taken as a
	// renewer that stopped.
	for state, want := range map[State]Verdict{Claimed: Won, Calling: Unfinished} {
		store := &memStore{rec: Lease{Holder: "old", Login: "login-1", State: state, Until: at.Add(365 * 24 * time.Hour)}.record()}
		c := claimer(store, "new")
		c.Now, c.Sleep = clock, func(context.Context, time.Duration) error { return nil }
		if v, _, _ := c.Claim(context.Background(), "login-1"); v != want {
			t.Errorf("%s for a year: %v, want %v", state, v, want)
		}
	}
	// A lease on another login binds nobody, and a broken record neither.
	for _, rec := range []string{
		Lease{Holder: "old", Login: "login-0", State: Calling, Until: at.Add(time.Hour)}.record(),
		`{"holder":`, "",
	} {
		c := claimer(&memStore{rec: rec}, "new")
		if v, _, _ := c.Claim(context.Background(), "login-1"); v != Won {
			t.Errorf("lease %q: %v, want won", rec, v)
		}
	}
}

func TestMarkKeepsOthersOffWhileCalling(t *testing.T) {
	store := &memStore{}
	a := claimer(store, "a")
	if v, _, _ := a.Claim(context.Background(), "login-1"); v != Won {
		t.Fatal(v)
	}
	if err := a.Mark(context.Background(), "login-1", Calling); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := claimer(store, "b").Claim(context.Background(), "login-1"); v != Held {
		t.Fatalf("b while a calls: %v", v)
	}
	if err := a.Mark(context.Background(), "login-1", Free); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := claimer(store, "b").Claim(context.Background(), "login-1"); v != Won {
		t.Fatalf("b after a freed it: %v", v)
	}
}

func TestAtIsAheadOfCodex(t *testing.T) {
	point := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		life time.Duration
		lead time.Duration
	}{
		{10 * 24 * time.Hour, 30 * time.Minute}, // ChatGPT's tokens: looks every 5 minutes
		{420 * time.Second, 84 * time.Second},   // the simulation's
		{time.Minute, 60 * time.Second},         // looks never closer than 10 s
		{0, 30 * time.Minute},
	} {
		if got := At(point, tc.life); !got.Equal(point.Add(-tc.lead)) {
			t.Errorf("life %v: At %v, want %v before the point", tc.life, point.Sub(got), tc.lead)
		}
	}
	if !At(time.Time{}, time.Hour).IsZero() {
		t.Error("no point, yet a renewal time")
	}
}
