package daemon

import (
	"math/rand/v2"
	"slices"
	"sort"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/veraticus/egoengine/internal/health/status"
	"github.com/veraticus/egoengine/internal/secrets/config"
	"github.com/veraticus/egoengine/internal/secrets/engine"
	"github.com/veraticus/egoengine/internal/secrets/renew"
	"github.com/veraticus/egoengine/internal/secrets/source"
)

// Retry policy. 1Password counts every read against hourly and daily
// quotas, and tight loops on auth or not-found errors have burnt a whole
// day's quota in minutes, so only failures that can heal by themselves are
// retried early, and those back off.
const (
	retryBase     = 30 * time.Second
	retryCap      = 30 * time.Minute
	rateLimitHold = time.Hour
	watchDebounce = 300 * time.Millisecond
	watchMinGap   = 5 * time.Second // per secret, between watch-triggered passes
	watchPerHour  = 12              // per secret; past this, wait for the schedule
	busyRetry     = 2 * time.Second // a file still being written: look again soon
)

// Near its renewal a credential that several workspaces share is checked
// more often, so that a copy renewed elsewhere arrives before this
// workspace's program spends its own, already used, refresh token. Codex
// renews on first use after its renewal point, so the look-outs cluster
// just after it: every interval (renew.Look: a thirtieth of the token's
// lifetime, between 10 s and 5 minutes) from one interval before the point to
// nearAfter intervals after it; then the gaps double (each as long as the
// time since the point) up to nearIdleMax, for a workspace whose copy
// nobody has renewed anywhere, until the installed copy changes. With
// Codex's tokens (a renewal every 8 days) that is every 5 minutes for the
// first hour, then at 2 h, 4 h and every 2 h after: at most 25 extra
// passes on the day of a renewal, none on the others. docs/egoagent.md
// gives the request budget.
const (
	nearAfter   = 12
	nearIdleMax = 2 * time.Hour
)

// Pass is a pass the planner wants run.
type Pass struct {
	Trigger status.Trigger
	Names   []string // nil: every secret not in Exclude
	Exclude []string
	Renew   bool // a look near renewal: it may renew a login that is due (renew = true)
}

func (p Pass) options() engine.Options {
	return engine.Options{Trigger: p.Trigger, Names: p.Names, Exclude: p.Exclude, Renew: p.Renew}
}

// Planner decides when passes run: the cron schedule (with jitter, and
// per-secret overrides), retries after failures, holds after rate limits,
// and passes for files the watcher saw change. It does no I/O and reads no
// clock: callers pass "now", which lets tests run a simulated hour in
// microseconds.
type Planner struct {
	entries   []*entry
	overrides []string // secrets with a schedule of their own
	jitter    time.Duration
	rng       *rand.Rand

	holdUntil time.Time // no automatic pass before this (rate limited)
	retries   map[string]*retry
	touched   map[string]time.Time // watch: secret → when its pass is due
	watched   map[string][]time.Time
	near      map[string]*near // dated secrets: checks around their renewal
	full      status.Trigger   // a full pass is wanted as soon as possible, for this reason
}

// near is what the planner knows of a dated secret's installed copy.
type near struct {
	refreshAt time.Time
	life      time.Duration
	next      time.Time
	// renewAt, for a login egoagent renews itself (renew = true): the
	// looks begin there instead, and the first that finds the login due
	// renews it, unless another workspace has the lease.
	renewAt time.Time
}

type entry struct {
	name  string // "" for the global schedule
	sched cron.Schedule
	next  time.Time
}

type retry struct {
	at       time.Time
	failures int
}

// NewPlanner plans for cfg from now on. rng supplies jitter; tests seed it.
func NewPlanner(cfg *config.Config, now time.Time, rng *rand.Rand) *Planner {
	p := &Planner{
		jitter:  cfg.Schedule.Jitter,
		rng:     rng,
		retries: map[string]*retry{},
		touched: map[string]time.Time{},
		watched: map[string][]time.Time{},
		near:    map[string]*near{},
	}
	// Specs were validated when the config was loaded.
	global, _ := cron.ParseStandard(cfg.Schedule.Refresh)
	p.entries = append(p.entries, &entry{sched: global})
	for _, s := range cfg.Secrets {
		if s.Schedule != "" {
			sched, _ := cron.ParseStandard(s.Schedule)
			p.entries = append(p.entries, &entry{name: s.Name, sched: sched})
			p.overrides = append(p.overrides, s.Name)
		}
	}
	for _, e := range p.entries {
		p.advance(e, now)
	}
	return p
}

func (p *Planner) advance(e *entry, now time.Time) {
	e.next = e.sched.Next(now)
	if p.jitter > 0 {
		e.next = e.next.Add(time.Duration(p.rng.Int64N(int64(p.jitter))))
	}
}

// RunAll asks for a full pass as soon as possible, with trigger saying why
// (daemon start, new config).
func (p *Planner) RunAll(trigger status.Trigger) { p.full = trigger }

// Next returns when something will next be due; the zero time if nothing is.
func (p *Planner) Next() time.Time {
	var next time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if p.full != "" {
		consider(time.Unix(0, 1))
	}
	for _, e := range p.entries {
		consider(e.next)
	}
	for _, r := range p.retries {
		consider(r.at)
	}
	for _, t := range p.touched {
		consider(t)
	}
	for _, n := range p.near {
		consider(n.next)
	}
	if !next.IsZero() && next.Before(p.holdUntil) {
		next = p.holdUntil
	}
	return next
}

// Due returns the next pass that is due at now, if any, and forgets it.
// Call it until it reports false. While a rate-limit hold lasts nothing is
// due; the first pass after the hold is a full one.
func (p *Planner) Due(now time.Time) (Pass, bool) {
	if now.Before(p.holdUntil) {
		for _, e := range p.entries {
			for !e.next.After(now) {
				p.advance(e, e.next)
			}
		}
		return Pass{}, false
	}
	if p.full != "" {
		trigger := p.full
		p.full = ""
		p.covered(nil)
		return Pass{Trigger: trigger}, true
	}
	for _, e := range p.entries {
		if e.next.After(now) {
			continue
		}
		p.advance(e, now)
		if e.name == "" {
			p.covered(p.overrides)
			return Pass{Trigger: status.TriggerSchedule, Exclude: slices.Clone(p.overrides)}, true
		}
		p.coveredName(e.name)
		return Pass{Trigger: status.TriggerSchedule, Names: []string{e.name}}, true
	}
	if names := dueNames(p.retriesAt(), now); len(names) > 0 {
		for _, n := range names {
			p.retries[n].at = time.Time{}
		}
		return Pass{Trigger: status.TriggerRetry, Names: names}, true
	}
	if names := dueNames(p.touched, now); len(names) > 0 {
		for _, n := range names {
			delete(p.touched, n)
		}
		return Pass{Trigger: status.TriggerWatch, Names: names}, true
	}
	due := map[string]time.Time{}
	for n, x := range p.near {
		due[n] = x.next
	}
	if names := dueNames(due, now); len(names) > 0 {
		for _, n := range names {
			p.near[n].next = nearNext(p.near[n], now)
		}
		return Pass{Trigger: status.TriggerNearRenewal, Names: names, Renew: true}, true
	}
	return Pass{}, false
}

// nearNext is when to look for a newer copy after looking at last.
func nearNext(n *near, last time.Time) time.Time {
	every := renew.Look(n.life)
	start := n.refreshAt.Add(-every)
	if !n.renewAt.IsZero() {
		start = n.renewAt
	}
	switch {
	case last.Before(start):
		return start
	case last.Before(n.refreshAt.Add(nearAfter * every)):
		return last.Add(every)
	default:
		return last.Add(min(nearIdleMax, max(every, last.Sub(n.refreshAt))))
	}
}

func (p *Planner) retriesAt() map[string]time.Time {
	m := map[string]time.Time{}
	for n, r := range p.retries {
		if !r.at.IsZero() {
			m[n] = r.at
		}
	}
	return m
}

func dueNames(m map[string]time.Time, now time.Time) []string {
	var names []string
	for n, t := range m {
		if !t.After(now) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// covered clears pending retries and watch passes that a pass over every
// secret except exclude makes unnecessary.
func (p *Planner) covered(exclude []string) {
	for n, r := range p.retries {
		if !slices.Contains(exclude, n) {
			r.at = time.Time{}
		}
	}
	for n := range p.touched {
		if !slices.Contains(exclude, n) {
			p.untouch(n)
		}
	}
}

func (p *Planner) coveredName(name string) {
	if r := p.retries[name]; r != nil {
		r.at = time.Time{}
	}
	p.untouch(name)
}

// Touch records that the watcher saw the file of secret name change in a
// way egoagent did not cause, and returns when that file's pass is due.
// The pass comes after a short debounce, at least watchMinGap after the
// file's previous watch pass, and never as the thirteenth in an hour: a
// change that finds the hour's watchPerHour passes used waits until the
// oldest of them is an hour old. No change is ever dropped, so a deleted
// file always comes back; a fight with another writer still cannot spend
// more than watchPerHour passes an hour of the 1Password quota.
func (p *Planner) Touch(name string, now time.Time) time.Time {
	if due, pending := p.touched[name]; pending {
		return due // that pass will see this change too
	}
	recent := p.watched[name][:0]
	for _, t := range p.watched[name] {
		if now.Sub(t) < time.Hour {
			recent = append(recent, t)
		}
	}
	due := now.Add(watchDebounce)
	if n := len(recent); n > 0 {
		due = later(due, recent[n-1].Add(watchMinGap))
	}
	if n := len(recent); n >= watchPerHour {
		// recent is in order: each due is later than the one before.
		due = later(due, recent[n-watchPerHour].Add(time.Hour))
	}
	p.watched[name] = append(recent, due)
	p.touched[name] = due
	return due
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// untouch drops name's pending watch pass, which another pass made
// unnecessary; it never ran, so it does not count against the hour.
func (p *Planner) untouch(name string) {
	due, ok := p.touched[name]
	if !ok {
		return
	}
	delete(p.touched, name)
	if w := p.watched[name]; len(w) > 0 && w[len(w)-1].Equal(due) {
		p.watched[name] = w[:len(w)-1]
	}
}

// Observe updates retries and holds from a finished pass.
func (p *Planner) Observe(rep *engine.Report, now time.Time) {
	if rep == nil {
		return
	}
	for _, o := range rep.Outcomes {
		p.observeNear(o, now)
		if o.Error == "" {
			delete(p.retries, o.Name)
			continue
		}
		r := p.retries[o.Name]
		if r == nil {
			r = &retry{}
			p.retries[o.Name] = r
		}
		r.failures++
		switch o.Class {
		case source.ClassRateLimited:
			// The quota is per token: hold every automatic pass.
			p.holdUntil = now.Add(rateLimitHold)
			p.full = "after rate limit"
			r.at = time.Time{}
		case engine.ClassBusy:
			r.at = now.Add(busyRetry)
		case source.ClassUnreachable, source.ClassOther, engine.ClassStopped:
			r.at = now.Add(backoff(r.failures, p.rng))
		default:
			// A bad token, a missing item, a failed check or a file in the
			// way will not heal by itself: wait for the schedule, a config
			// change or a person.
			r.at = time.Time{}
		}
	}
}

// observeNear keeps the renewal point of a dated secret's installed copy.
// Any pass that covered the secret counts as a look at the source.
func (p *Planner) observeNear(o engine.Outcome, now time.Time) {
	if o.RefreshAt.IsZero() {
		delete(p.near, o.Name)
		return
	}
	n := &near{refreshAt: o.RefreshAt, life: o.TokenLife}
	if !o.RenewAt.IsZero() {
		// Every workspace holds the same login, so without a spread all
		// would come for the lease in the same second: only one can win,
		// and the first to renew saves the others the attempt.
		n.renewAt = o.RenewAt
		if old := p.near[o.Name]; old != nil && old.refreshAt.Equal(o.RefreshAt) && !old.renewAt.IsZero() {
			n.renewAt = old.renewAt
		} else {
			n.renewAt = n.renewAt.Add(time.Duration(p.rng.Int64N(int64(renew.Look(o.TokenLife) / 2))))
		}
	}
	n.next = nearNext(n, now)
	p.near[o.Name] = n
}

// backoff is exponential with jitter: between half and all of
// base·2^(n-1), capped.
func backoff(failures int, rng *rand.Rand) time.Duration {
	d := retryCap
	if failures < 20 {
		d = min(retryCap, retryBase<<(failures-1))
	}
	return d/2 + time.Duration(rng.Int64N(int64(d/2)+1))
}

// NextRefresh says when secret name will next be refreshed, and why: the
// schedule, a retry, or a check near its renewal; for status.
func (p *Planner) NextRefresh(name string) (next time.Time, why status.Trigger) {
	for _, e := range p.entries {
		if e.name == name || (e.name == "" && !slices.Contains(p.overrides, name)) {
			next, why = e.next, status.TriggerSchedule
		}
	}
	if r := p.retries[name]; r != nil && !r.at.IsZero() && r.at.Before(next) {
		next, why = r.at, status.TriggerRetry
	}
	if n := p.near[name]; n != nil && n.next.Before(next) {
		next, why = n.next, status.TriggerNearRenewal
	}
	if next.Before(p.holdUntil) {
		next, why = p.holdUntil, "rate limited"
	}
	return next, why
}

// HoldUntil returns the end of the current rate-limit hold, if any.
func (p *Planner) HoldUntil() time.Time { return p.holdUntil }
