package daemon

import (
	"slices"

	"github.com/veraticus/egoengine/internal/secrets/engine"
)

// job is a pass to run and the callers waiting for its report.
type job struct {
	opts    engine.Options
	waiters []waiter
}

// waiter is a caller of the control socket waiting for a pass: it gets the
// report narrowed to the names it asked for.
type waiter struct {
	names []string
	reply chan<- Response
}

// queue holds the passes waiting for the one running to end.
type queue []*job

// take removes and returns the next pass to run, nil when none waits.
// Passes that queued up behind a running pass are merged into one, so
// twenty people asking at once cost one trip to 1Password, not twenty. A
// forced pass is never merged, either way: --force must never spread to
// secrets nobody named, and a forced pass must not take in other callers'
// secrets either. An unforced pass takes in every unforced one behind it,
// passing over forced ones, which keep their place.
func (q *queue) take() *job {
	if len(*q) == 0 {
		return nil
	}
	j, rest := (*q)[0], (*q)[1:]
	if !j.opts.Force {
		keep := rest[:0]
		for _, o := range rest {
			if o.opts.Force {
				keep = append(keep, o)
				continue
			}
			j.opts.Names, j.opts.Exclude = merge(j.opts, o.opts)
			j.opts.Renew = j.opts.Renew || o.opts.Renew
			j.opts.RenewNow = j.opts.RenewNow || o.opts.RenewNow
			j.waiters = append(j.waiters, o.waiters...)
		}
		rest = keep
	}
	*q = rest
	return j
}

// drain empties the queue and returns everyone who was waiting on it.
func (q *queue) drain() []waiter {
	var ws []waiter
	for _, j := range *q {
		ws = append(ws, j.waiters...)
	}
	*q = nil
	return ws
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

// only narrows a report to the named secrets.
func only(rep *engine.Report, names []string) *engine.Report {
	if len(names) == 0 || rep == nil {
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
