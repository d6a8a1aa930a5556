package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// MinRefreshInterval is the shortest gap allowed between two passes of any
// schedule (schedule.refresh and every [[secret]] schedule) when secrets come
// from 1Password. A pass of the image's configuration costs 10 HTTP
// requests (four to sign in, the keysets, the vault list, an item list and
// a batch per vault, two per file), two more per mirrored Document, and
// 1Password counts them against a budget that several workspaces share: per
// token 1,000 reads an hour on Teams and Families, per account 1,000
// requests a day on personal and family plans. A pass every minute would
// spend a personal account's day in under two hours; one an hour spends
// 240 a day per workspace. An extra pass is always one `egoagent
// refresh` away, so nothing needs a tighter schedule.
//
// A "dir" source reads a local folder and spends nothing, so it has no
// floor: the demo and the end-to-end tests run passes seconds apart.
const MinRefreshInterval = time.Hour

// scheduleWalk is how many activations of a cron spec are looked at to find
// its shortest gap. Minutes and hours repeat within a day, so every gap a
// five-field spec can have shows up long before that; the bound only keeps
// a yearly spec from walking for centuries.
const scheduleWalk = 1000

// scheduleFrom is where the walk starts: a fixed time, so that a spec is
// judged the same on every run, at the start of a leap year, so that
// "0 0 29 2 *" is seen to run.
var scheduleFrom = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// validSchedule checks a cron spec or descriptor, and that its runs are at
// least floor apart (0 for no floor). The error reads as a sentence after
// the key's name.
func validSchedule(spec string, floor time.Duration) error {
	sched, err := parseSchedule(spec)
	if err != nil {
		return fmt.Errorf("%q is not a schedule (%v); write five cron fields such as \"0 */6 * * *\" or a descriptor such as \"@every 6h\" or \"@daily\"", spec, err)
	}
	if d, ok := everyDuration(spec); ok {
		// robfig/cron quietly turns anything under a second into a
		// second, so the duration is read here to say what was written.
		var problem string
		switch {
		case d == 0:
			problem = fmt.Sprintf("%q is zero, which would run a pass every second", spec)
		case d < 0:
			problem = fmt.Sprintf("%q is negative, which would run a pass every second", spec)
		case d < time.Second:
			problem = fmt.Sprintf("%q is shorter than a second, which would run a pass every second", spec)
		case d < floor:
			problem = fmt.Sprintf("%q would run a pass %s", spec, every(d))
		default:
			return nil
		}
		if floor == 0 {
			return fmt.Errorf("%s; write a positive duration of a second or more, such as \"@every 1m\"", problem)
		}
		return tooOften(problem, floor, true)
	}
	gap, uniform, runs := shortestGap(sched)
	if !runs {
		return fmt.Errorf("%q never runs: %s", spec, neverReason(sched))
	}
	if gap < floor {
		problem := fmt.Sprintf("%q would run a pass %s", spec, every(gap))
		if !uniform {
			problem = fmt.Sprintf("%q would run passes as little as %s apart", spec, spell(gap))
		}
		return tooOften(problem, floor, false)
	}
	return nil
}

// tooOften says why a schedule is refused and what to write instead, in
// the form the user wrote it in.
func tooOften(problem string, floor time.Duration, descriptor bool) error {
	instead := fmt.Sprintf("write \"@every %s\" or longer, such as the default %q", shortDuration(floor), DefaultRefresh)
	if !descriptor {
		instead = "write a spec whose runs are at least that far apart, such as \"0 * * * *\" (hourly) or \"0 */6 * * *\""
	}
	return fmt.Errorf("%s; passes must be at least %s apart, because each spends 10 or more 1Password requests and accounts allow only so many a day: %s; for an extra pass now, run egoagent refresh",
		problem, spell(floor), instead)
}

// parseSchedule is cron.ParseStandard, which panics on a time zone prefix
// with nothing after it ("TZ=UTC").
func parseSchedule(spec string) (s cron.Schedule, err error) {
	defer func() {
		if recover() != nil {
			s, err = nil, fmt.Errorf("a time zone needs a schedule after it, such as \"TZ=UTC 0 6 * * *\"")
		}
	}()
	return cron.ParseStandard(spec)
}

// everyDuration returns D of "@every D", after an optional time zone.
func everyDuration(spec string) (time.Duration, bool) {
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		if i := strings.IndexByte(spec, ' '); i >= 0 {
			spec = strings.TrimSpace(spec[i:])
		}
	}
	rest, ok := strings.CutPrefix(spec, "@every ")
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(rest)
	return d, err == nil
}

// shortestGap walks a schedule's activations from scheduleFrom and returns
// the shortest gap between two of them, whether every gap was that long,
// and whether it runs at all. A spec without a time zone is walked in UTC,
// so that the answer does not depend on the machine's.
func shortestGap(s cron.Schedule) (gap time.Duration, uniform, runs bool) {
	if spec, ok := s.(*cron.SpecSchedule); ok && spec.Location == time.Local {
		utc := *spec
		utc.Location = time.UTC
		s = &utc
	}
	t := s.Next(scheduleFrom)
	if t.IsZero() {
		return 0, false, false
	}
	var longest time.Duration
	for i := 0; i < scheduleWalk; i++ {
		next := s.Next(t)
		if next.IsZero() {
			break
		}
		g := next.Sub(t)
		if gap == 0 || g < gap {
			gap = g
		}
		longest = max(longest, g)
		t = next
	}
	if gap == 0 {
		// Ran once and not again within robfig's five-year search: as
		// far apart as a schedule gets.
		return 5 * 365 * 24 * time.Hour, true, true
	}
	return gap, gap == longest, true
}

// neverReason explains a five-field spec that never runs. The only way one
// can is a day of the month that none of its months has (robfig/cron treats
// a restricted day of the week as "or", so that one always runs).
func neverReason(s cron.Schedule) string {
	const generic = "no date matches its day-of-month and month fields; check them"
	spec, ok := s.(*cron.SpecSchedule)
	if !ok {
		return generic
	}
	var months, days []string
	for m := time.January; m <= time.December; m++ {
		if spec.Month&(1<<uint(m)) != 0 {
			months = append(months, m.String())
		}
	}
	for d := 1; d <= 31; d++ {
		if spec.Dom&(1<<uint(d)) != 0 {
			days = append(days, ordinal(d))
		}
	}
	if len(months) == 0 || len(days) == 0 || len(months) > 3 || len(days) > 3 {
		return generic
	}
	verb := "has"
	if len(months) > 1 {
		verb = "have"
	}
	return fmt.Sprintf("%s %s no %s; pick a day of the month that exists in it", strings.Join(months, " and "), verb, strings.Join(days, " or "))
}

func ordinal(n int) string {
	suffix := "th"
	switch {
	case n%100 >= 11 && n%100 <= 13:
	case n%10 == 1:
		suffix = "st"
	case n%10 == 2:
		suffix = "nd"
	case n%10 == 3:
		suffix = "rd"
	}
	return strconv.Itoa(n) + suffix
}

// spell writes d in words where it is a whole number of hours, minutes or
// seconds under a minute ("1 hour", "10 minutes", "30 seconds"), else as a
// user would write it ("59m59s").
func spell(d time.Duration) string {
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{time.Hour, "hour"}, {time.Minute, "minute"}, {time.Second, "second"}} {
		if d >= u.d && d%u.d == 0 && (u.d != time.Second || d < time.Minute) {
			n := int64(d / u.d)
			if n == 1 {
				return "1 " + u.name
			}
			return fmt.Sprintf("%d %ss", n, u.name)
		}
	}
	return shortDuration(d)
}

// every is "every second", "every 10 minutes".
func every(d time.Duration) string {
	return "every " + strings.TrimPrefix(spell(d), "1 ")
}

// shortDuration is d as a user would write it: "1h", not "1h0m0s".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
