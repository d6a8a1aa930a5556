package daemon

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/veraticus/egoengine/internal/health/check"
	"github.com/veraticus/egoengine/internal/health/statedir"
	"github.com/veraticus/egoengine/internal/health/status"
	"github.com/veraticus/egoengine/internal/secrets/config"
	"github.com/veraticus/egoengine/internal/secrets/engine"
	"github.com/veraticus/egoengine/internal/secrets/source"
	"github.com/veraticus/egoengine/internal/secrets/source/sourcetest"
)

// A directory source has no schedule floor (it spends no 1Password
// requests), which lets these tests plan minutes apart.
const plannerConfig = `
[source]
kind = "dir"
dir = "/nonexistent"

[schedule]
refresh = "@every 1m"
jitter = "0s"

[[secret]]
name = "a"
ref = "op://v/a/f"
path = "~/a"

[[secret]]
name = "b"
ref = "op://v/b/f"
path = "~/b"
`

// simulate runs the planner against a real engine and a scripted source on
// a simulated clock, for the given length of time, and returns how many
// calls reached the source.
func simulate(t *testing.T, cfgTOML string, fail source.Class, length time.Duration) (calls int, passes []Pass) {
	t.Helper()
	home := t.TempDir()
	cfg, err := config.Parse("test.toml", []byte(cfgTOML), config.Env{Home: home})
	if err != nil {
		t.Fatal(err)
	}
	src := sourcetest.New(map[string]string{"op://v/a/f": "A", "op://v/b/f": "B"})
	src.Fail(fail)
	start := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	now := start
	eng := &engine.Engine{
		Config: cfg, Source: src, Home: home, StateDir: statedir.Path(home), Log: zap.NewNop(),
		Checker: check.New(check.Options{StageDir: filepath.Join(home, "stage")}),
		Now:     func() time.Time { return now },
	}
	p := NewPlanner(cfg, now, rand.New(rand.NewPCG(1, 2)))
	p.RunAll(status.TriggerStart)
	for now.Sub(start) < length {
		next := p.Next()
		if next.IsZero() {
			t.Fatal("nothing planned")
		}
		if next.Sub(start) >= length {
			break
		}
		if next.After(now) {
			now = next
		}
		for {
			pass, ok := p.Due(now)
			if !ok {
				break
			}
			passes = append(passes, pass)
			rep, err := eng.Pass(context.Background(), pass.options())
			if err != nil {
				t.Fatal(err)
			}
			p.Observe(rep, now)
		}
		if len(passes) > 10000 {
			t.Fatal("runaway")
		}
	}
	return src.Calls(), passes
}

func TestHealthySourceIsCalledOncePerScheduledPass(t *testing.T) {
	calls, passes := simulate(t, plannerConfig, "", time.Hour)
	// One start pass and one per minute: each pass is one batched call.
	if calls < 60 || calls > 62 || calls != len(passes) {
		t.Fatalf("calls = %d over %d passes", calls, len(passes))
	}
}

func TestRateLimitHoldsEveryPassForAnHour(t *testing.T) {
	calls, passes := simulate(t, plannerConfig, source.ClassRateLimited, time.Hour+30*time.Second)
	// The start pass hits the limit; the next call comes an hour later.
	if calls != 2 {
		t.Fatalf("calls = %d in a simulated hour (passes %+v); want 2", calls, passes)
	}
}

func TestAuthErrorsWaitForTheSchedule(t *testing.T) {
	for _, class := range []source.Class{source.ClassInvalidToken, source.ClassMissingToken, source.ClassNotFound} {
		calls, passes := simulate(t, plannerConfig, class, time.Hour)
		for _, p := range passes {
			if p.Trigger == status.TriggerRetry {
				t.Fatalf("%s: a retry pass ran", class)
			}
		}
		if calls > 62 {
			t.Fatalf("%s: %d calls in an hour on a one-minute schedule", class, calls)
		}
	}
}

func TestUnreachableBacksOff(t *testing.T) {
	cfg := `
[schedule]
refresh = "@every 6h"
jitter = "0s"

[[secret]]
name = "a"
ref = "op://v/a/f"
path = "~/a"
`
	calls, passes := simulate(t, cfg, source.ClassUnreachable, time.Hour)
	// Retries at about 30s, 1m, 2m, 4m, 8m, 16m, 30m, each with up to half
	// off for jitter: at most 8 retries in an hour, never a tight loop.
	if calls < 4 || calls > 9 {
		t.Fatalf("calls = %d in an hour of unreachable source: %+v", calls, passes)
	}
	for i := 1; i < len(passes); i++ {
		if passes[i].Trigger != status.TriggerRetry {
			t.Fatalf("pass %d: %+v", i, passes[i])
		}
	}
}

func TestPerSecretScheduleOverride(t *testing.T) {
	cfg := plannerConfig + `schedule = "@every 10m"` + "\n"
	_, passes := simulate(t, cfg, "", 31*time.Minute)
	var onlyB, excludingB int
	for _, p := range passes {
		switch {
		case len(p.Names) == 1 && p.Names[0] == "b":
			onlyB++
		case len(p.Exclude) == 1 && p.Exclude[0] == "b":
			excludingB++
		}
	}
	if onlyB != 3 || excludingB < 29 {
		t.Fatalf("b alone %d times, others %d times: %+v", onlyB, excludingB, passes)
	}
}

func TestJitterSpreadsPasses(t *testing.T) {
	cfg, _ := config.Parse("t", []byte("[schedule]\nrefresh = \"0 * * * *\"\njitter = \"10m\"\n[[secret]]\nname = \"a\"\nref = \"op://v/a/f\"\npath = \"~/a\"\n"), config.Env{Home: "/h"})
	now := time.Date(2026, 11, 27, 10, 30, 0, 0, time.UTC)
	seen := map[time.Time]bool{}
	for seed := uint64(0); seed < 20; seed++ {
		next := NewPlanner(cfg, now, rand.New(rand.NewPCG(seed, seed))).Next()
		hour := time.Date(2026, 11, 27, 11, 0, 0, 0, time.UTC)
		if next.Before(hour) || !next.Before(hour.Add(10*time.Minute)) {
			t.Fatalf("next = %v, want within 10m after %v", next, hour)
		}
		seen[next] = true
	}
	if len(seen) < 10 {
		t.Fatalf("only %d distinct times from 20 workspaces", len(seen))
	}
}

func TestTouchDebouncesAndCaps(t *testing.T) {
	cfg, _ := config.Parse("t", []byte(plannerConfig), config.Env{Home: "/h"})
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	p := NewPlanner(cfg, now, rand.New(rand.NewPCG(1, 1)))
	p.Touch("a", now)
	p.Touch("a", now.Add(10*time.Millisecond)) // same change, still pending
	if _, ok := p.Due(now.Add(100 * time.Millisecond)); ok {
		t.Fatal("due before the debounce")
	}
	pass, ok := p.Due(now.Add(watchDebounce))
	if !ok || pass.Trigger != status.TriggerWatch || len(pass.Names) != 1 || pass.Names[0] != "a" {
		t.Fatalf("pass = %+v, %v", pass, ok)
	}
	// A file that changes every second for ten minutes gets passes at most
	// every watchMinGap, and at most watchPerHour in all.
	passes := 1
	var last time.Time
	for i := 1; i < 600; i++ {
		at := now.Add(time.Duration(i) * time.Second)
		p.Touch("a", at)
		if watchPassesDue(p, at) > 0 {
			if !last.IsZero() && at.Sub(last) < watchMinGap {
				t.Fatalf("watch passes %v apart", at.Sub(last))
			}
			passes++
			last = at
		}
	}
	if passes != watchPerHour {
		t.Fatalf("%d watch passes in ten minutes of changes, want the cap %d", passes, watchPerHour)
	}
}

// watchPassesDue takes every pass due at at, as the daemon does, and
// counts the watch passes among them.
func watchPassesDue(p *Planner, at time.Time) int {
	n := 0
	for {
		pass, ok := p.Due(at)
		if !ok {
			return n
		}
		if pass.Trigger == status.TriggerWatch {
			n++
		}
	}
}

// dailyConfig has no scheduled pass in the hours these tests simulate.
const dailyConfig = `
[schedule]
refresh = "0 0 * * *"
jitter = "0s"

[[secret]]
name = "a"
ref = "op://v/a/f"
path = "~/a"
`

// The watch rule, under a file deleted (or rewritten: to the planner both
// are a change) every 6 s for two hours: every change gets a pass, none
// later than an hour; passes are at least watchMinGap apart and never more
// than watchPerHour in any hour; the first watchPerHour come at once.
func TestWatchRuleUnderRepeatedChanges(t *testing.T) {
	cfg, err := config.Parse("t", []byte(dailyConfig), config.Env{Home: "/h"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	p := NewPlanner(cfg, start, rand.New(rand.NewPCG(1, 1)))
	var changes, passes []time.Time
	step := 100 * time.Millisecond
	for at := start; at.Before(start.Add(3 * time.Hour)); at = at.Add(step) {
		if off := at.Sub(start); off < 2*time.Hour && off%(6*time.Second) == 0 {
			changes = append(changes, at)
			p.Touch("a", at)
		}
		if watchPassesDue(p, at) > 0 {
			passes = append(passes, at)
		}
	}
	for i, at := range passes {
		if i > 0 && at.Sub(passes[i-1]) < watchMinGap {
			t.Fatalf("passes %v apart", at.Sub(passes[i-1]))
		}
		if i >= watchPerHour && at.Sub(passes[i-watchPerHour]) < time.Hour {
			t.Fatalf("%d passes within an hour, ending at %v", watchPerHour+1, at.Sub(start))
		}
	}
	for i := 0; i < watchPerHour; i++ {
		if d := passes[i].Sub(changes[i]); d > watchDebounce+step {
			t.Fatalf("change %d waited %v with the hour's passes unused", i, d)
		}
	}
	// Every change is followed by a pass within the hour.
	j := 0
	for _, c := range changes {
		for j < len(passes) && passes[j].Before(c) {
			j++
		}
		if j == len(passes) || passes[j].Sub(c) > time.Hour+watchDebounce+step {
			t.Fatalf("the change at %v got no pass within the hour", c.Sub(start))
		}
	}
}

// A watch pass that a full pass made unnecessary never ran, so it does not
// use up one of the hour's watch passes.
func TestCoveredWatchPassesDoNotCount(t *testing.T) {
	cfg, _ := config.Parse("t", []byte(dailyConfig), config.Env{Home: "/h"})
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	p := NewPlanner(cfg, now, rand.New(rand.NewPCG(1, 1)))
	for i := 0; i < 3*watchPerHour; i++ {
		p.Touch("a", now)
		p.RunAll(status.TriggerConfigChange)
		if pass, _ := p.Due(now); pass.Trigger != status.TriggerConfigChange {
			t.Fatalf("pass %+v", pass)
		}
		if _, ok := p.Due(now.Add(watchDebounce)); ok {
			t.Fatal("a covered watch pass still ran")
		}
		now = now.Add(watchMinGap)
	}
	if due := p.Touch("a", now); due.Sub(now) > watchDebounce {
		t.Fatalf("after only covered passes, a change waits %v", due.Sub(now))
	}
}
