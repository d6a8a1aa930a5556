package daemon

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/veraticus/egoengine/internal/health/status"
	"github.com/veraticus/egoengine/internal/secrets/config"
	"github.com/veraticus/egoengine/internal/secrets/engine"
)

// nearPlanner plans for one dated secret on a daily schedule, and has seen
// a pass that installed a copy renewed at renewed, with tokens living life.
func nearPlanner(t *testing.T, now, refreshAt time.Time, life time.Duration) *Planner {
	t.Helper()
	cfg, err := config.Parse("test.toml", []byte(`
[schedule]
refresh = "@every 24h"
jitter = "0s"

[[secret]]
name = "codex"
ref = "op://egoengine/Codex Auth/auth.json"
path = "~/.codex/auth.json"
check = "codex"
policy = "consumer-rewrites"
`), config.Env{Home: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	p := NewPlanner(cfg, now, rand.New(rand.NewPCG(1, 2)))
	p.Observe(&engine.Report{Outcomes: []engine.Outcome{{Name: "codex", State: status.Fresh, RefreshAt: refreshAt, TokenLife: life}}}, now)
	return p
}

// run plays the planner forward to end and returns when each near-renewal
// pass ran.
func run(p *Planner, end time.Time, seen func(now time.Time) *engine.Report) []time.Time {
	var at []time.Time
	for {
		now := p.Next()
		if now.IsZero() || now.After(end) {
			return at
		}
		for {
			pass, ok := p.Due(now)
			if !ok {
				break
			}
			if pass.Trigger == status.TriggerNearRenewal {
				at = append(at, now)
			}
			var rep *engine.Report
			if seen != nil {
				rep = seen(now)
			}
			if rep != nil {
				p.Observe(rep, now)
			}
		}
	}
}

// With Codex's tokens (renewed every 8 days): every 5 minutes from 5
// minutes before the renewal point to an hour after it, then at 2 h, 4 h
// and every 2 hours while nothing changes. A day costs at most 25 extra
// passes.
func TestNearRenewalChecksWithLongLivedTokens(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	p := nearPlanner(t, start, start, 10*24*time.Hour)
	at := run(p, start.Add(24*time.Hour), nil)
	// Observed at the renewal point itself: the window has begun.
	var want []time.Time
	for m := 5; m <= 60; m += 5 {
		want = append(want, start.Add(time.Duration(m)*time.Minute))
	}
	for h := 2; h <= 24; h += 2 {
		want = append(want, start.Add(time.Duration(h)*time.Hour))
	}
	if !slices.Equal(at, want) {
		t.Fatalf("looks at\n%v\nwant\n%v", at, want)
	}
	if n := len(at); n > 25 {
		t.Fatalf("%d near-renewal passes in a day; the budget is 25", n)
	}
}

// Before the window nothing is spent: a copy renewed a day ago is not
// looked at until its renewal point (8 days on) comes near.
func TestNearRenewalCostsNothingFarFromRenewal(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	p := nearPlanner(t, start, start.Add(7*24*time.Hour), 10*24*time.Hour)
	if at := run(p, start.Add(6*24*time.Hour), nil); len(at) != 0 {
		t.Fatalf("%d looks six days before renewal", len(at))
	}
}

// A token that lives a little over Codex's five-minute lead (the
// simulation's): checks every 10 seconds around its renewal.
func TestNearRenewalChecksWithShortLivedTokens(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	renew := start.Add(2 * time.Second)
	p := nearPlanner(t, start, renew, 302*time.Second)
	at := run(p, start.Add(time.Minute), nil)
	every := 302 * time.Second / 30
	if len(at) != 5 || !at[0].Equal(start.Add(every)) || at[1].Sub(at[0]) != every {
		t.Fatalf("checks at %v; want every %v", at, every)
	}
}

// Once a pass installs a newer copy, the checks move to its renewal.
func TestNearRenewalFollowsTheInstalledCopy(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	renew := start.Add(time.Hour)
	p := nearPlanner(t, start, renew, 10*24*time.Hour)
	later := renew.Add(10 * 24 * time.Hour)
	at := run(p, start.Add(3*time.Hour), func(now time.Time) *engine.Report {
		if now.Before(renew) {
			return &engine.Report{Outcomes: []engine.Outcome{{Name: "codex", State: status.Fresh, RefreshAt: renew, TokenLife: 10 * 24 * time.Hour}}}
		}
		// Another workspace renewed; this pass installed its copy.
		return &engine.Report{Outcomes: []engine.Outcome{{Name: "codex", State: status.Fresh, RefreshAt: later, TokenLife: 10 * 24 * time.Hour}}}
	})
	if want := []time.Time{renew.Add(-5 * time.Minute), renew}; !slices.Equal(at, want) {
		t.Fatalf("checks at %v; want %v, then none", at, want)
	}
	if next, why := p.NextRefresh("codex"); why != "schedule" || !next.Equal(start.Add(24*time.Hour)) {
		t.Fatalf("next %v (%s)", next, why)
	}
}

func TestBusyFileIsLookedAtAgainSoon(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	p := nearPlanner(t, start, start.Add(48*time.Hour), 10*24*time.Hour)
	p.Observe(&engine.Report{Outcomes: []engine.Outcome{{Name: "codex", State: status.Fresh, Error: "still being written", Class: engine.ClassBusy}}}, start)
	if next, why := p.NextRefresh("codex"); why != "retry" || !next.Equal(start.Add(busyRetry)) {
		t.Fatalf("next %v (%s)", next, why)
	}
}

// With renew = true the looks begin six looks before Codex's point, each
// workspace at its own moment within half a look, and every look may renew.
// Once the renewed login is installed, the looks move to its point, so the
// hour after the old point costs nothing.
func TestNearRenewalLooksBeginAheadForTheRenewer(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	point := start.Add(6 * time.Hour)
	life := 10 * 24 * time.Hour
	renewAt := point.Add(-30 * time.Minute)
	var firsts []time.Time
	for seed := range uint64(20) {
		cfg, err := config.Parse("test.toml", []byte("[schedule]\nrefresh = \"@every 24h\"\njitter = \"0s\"\n[[secret]]\nname = \"codex\"\nref = \"op://v/i/f\"\npath = \"~/a\"\n"), config.Env{Home: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		p := NewPlanner(cfg, start, rand.New(rand.NewPCG(seed, 2)))
		observe := func(now, refreshAt time.Time) {
			p.Observe(&engine.Report{Outcomes: []engine.Outcome{{Name: "codex", State: status.Fresh, RefreshAt: refreshAt, TokenLife: life,
				RenewAt: refreshAt.Add(-30 * time.Minute)}}}, now)
		}
		observe(start, point)
		var looks []time.Time
		for now := p.Next(); !now.After(start.Add(24 * time.Hour)); now = p.Next() {
			pass, ok := p.Due(now)
			if !ok {
				continue
			}
			if pass.Trigger != status.TriggerNearRenewal {
				continue
			}
			if !pass.Renew {
				t.Fatal("a look near renewal that may not renew")
			}
			looks = append(looks, now)
			// The second look finds the login renewed (here or elsewhere).
			if len(looks) == 2 {
				observe(now, now.Add(8*24*time.Hour))
			} else {
				observe(now, point)
			}
		}
		if len(looks) != 2 || looks[0].Before(renewAt) || !looks[0].Before(renewAt.Add(150*time.Second)) || looks[1].Sub(looks[0]) != 5*time.Minute {
			t.Fatalf("seed %d: looks at %v; want the first within 2.5 minutes after %v, the next 5 minutes on, then none", seed, looks, renewAt)
		}
		firsts = append(firsts, looks[0])
	}
	slices.SortFunc(firsts, func(a, b time.Time) int { return a.Compare(b) })
	if firsts[0].Equal(firsts[len(firsts)-1]) {
		t.Fatal("every workspace looks at the same moment: no spread")
	}
}
