package renew

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Store keeps the one lease record of a login, where every workspace can
// read and write it: with 1Password, an item beside the login's own
// (source.Leaser). The record is text this package writes; nothing in it is
// secret.
//
// Nothing is assumed of the store beyond this: a write that returns has
// taken effect, and a read that starts after it sees it or a later write.
// There is no compare-and-swap (whether the 1Password service refuses a
// stale write is not known), so Claim makes its own mutual exclusion out
// of timing, as Fischer's protocol does.
type Store interface {
	ReadLease(ctx context.Context) (string, error)
	WriteLease(ctx context.Context, record string) error
}

// State is where a lease's renewal stands.
type State string

const (
	// Claimed: its holder is waiting out the settle time before it may call
	// the token endpoint; nobody has presented the refresh token.
	Claimed State = "claimed"
	// Calling: its holder is calling, or has called, the token endpoint
	// with this login's refresh token. Past Until, it stopped half way:
	// the token may be spent, and nobody calls with it again.
	Calling State = "calling"
	// Done: its holder installed and uploaded the new login.
	Done State = "done"
	// Refused: the token endpoint refused this login's refresh token for
	// good; only a new sign-in helps.
	Refused State = "refused"
	// Free: its holder never reached the endpoint (it could not connect):
	// anyone may claim the login again at once.
	Free State = "free"
)

// Lease is the record in the store.
type Lease struct {
	Holder string    `json:"holder"` // the workspace, and one attempt of it
	Login  string    `json:"login"`  // which login: its dates (Login), never a token
	State  State     `json:"state"`
	Until  time.Time `json:"until"` // a Claimed or Calling lease binds until then
}

func parseLease(rec string) Lease {
	var l Lease
	if rec == "" || json.Unmarshal([]byte(rec), &l) != nil {
		// An unreadable record binds nobody: it is a hand edit or a
		// half-made item, and the next write replaces it.
		return Lease{}
	}
	return l
}

func (l Lease) record() string {
	b, _ := json.Marshal(l) // strings and a time: cannot fail
	return string(b)
}

// Verdict is the outcome of Claim.
type Verdict string

const (
	Won        Verdict = "won"        // this workspace renews now
	Held       Verdict = "held"       // another workspace holds a live lease on this login
	Lost       Verdict = "lost"       // another workspace claimed in the same moment, and its claim stands
	Unfinished Verdict = "unfinished" // a renewer stopped while calling; its token may be spent, so nobody calls
	Dead       Verdict = "refused"    // the endpoint refused this login for good
	Slow       Verdict = "slow"       // the store took too long to claim safely; try at the next look
)

// Claimer runs the lease protocol for one workspace.
type Claimer struct {
	Store  Store
	Holder string // who claims: the workspace's name and a random part, different on every attempt

	// Fischer's protocol: the read that found the lease free and the write
	// of the claim must both be over within Bound, and the claim is read
	// back only after Settle, longer than Bound. Any claim another workspace
	// based on a read from before ours took effect has then landed, and the
	// last write wins for everyone who reads back. TTL is how long a claim
	// binds others: long enough to settle, call the endpoint and upload.
	Bound, Settle, TTL time.Duration

	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// Timing of the protocol with 1Password. A read is three requests and a
// write three, a second or two on a loaded machine; Bound leaves room for
// that many times over, and a claim that takes longer is dropped (Slow),
// never trusted.
const (
	DefaultBound  = 10 * time.Second
	DefaultSettle = 12 * time.Second
	DefaultTTL    = 60 * time.Second
)

// NewClaimer returns a Claimer with the default timing and the real clock.
func NewClaimer(s Store, holder string) *Claimer {
	return &Claimer{Store: s, Holder: holder, Bound: DefaultBound, Settle: DefaultSettle, TTL: DefaultTTL,
		Now: time.Now, Sleep: sleep}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Claim tries to become the one renewer of login. It returns Won only when
// this workspace may call the token endpoint now; the Lease is the one that
// decided (ours when Won, another's otherwise).
func (c *Claimer) Claim(ctx context.Context, login string) (Verdict, Lease, error) {
	start := c.Now()
	rec, err := c.Store.ReadLease(ctx)
	if err != nil {
		return "", Lease{}, err
	}
	cur := parseLease(rec)
	if v, bound := binds(cur, login, c.Holder, c.Now(), c.TTL); bound {
		return v, cur, nil
	}
	mine := Lease{Holder: c.Holder, Login: login, State: Claimed, Until: c.Now().Add(c.TTL)}
	if err := c.Store.WriteLease(ctx, mine.record()); err != nil {
		return "", Lease{}, err
	}
	if took := c.Now().Sub(start); took > c.Bound {
		// Another workspace may have read the lease free after our read
		// and written after our read-back: nothing can be concluded. The
		// claim binds others until it expires; this workspace tries again
		// at its next look.
		return Slow, mine, nil
	}
	if err := c.Sleep(ctx, c.Settle); err != nil {
		return "", Lease{}, err
	}
	rec, err = c.Store.ReadLease(ctx)
	if err != nil {
		return "", Lease{}, err
	}
	back := parseLease(rec)
	if back.Holder != c.Holder || back.Login != login || back.State != Claimed {
		return Lost, back, nil
	}
	return Won, back, nil
}

// binds reports whether lease l keeps holder from claiming login at now,
// and why.
func binds(l Lease, login, holder string, now time.Time, ttl time.Duration) (Verdict, bool) {
	if l.Login != login {
		// A lease on another login (an older one, renewed since) binds
		// nobody on this one.
		return "", false
	}
	// No workspace writes a lease that lasts longer than ttl; one that
	// claims to (a hand edit, a clock far ahead) is taken as expired, so
	// that it cannot hold the renewal off for ever.
	live := now.Before(l.Until) && !l.Until.After(now.Add(ttl+clockSkew))
	switch l.State {
	case Claimed:
		return Held, live && l.Holder != holder
	case Calling:
		if live {
			return Held, true
		}
		return Unfinished, true
	case Done:
		// Its renewer uploaded a new login, yet this workspace's source
		// still holds this one: the token is spent either way.
		return Unfinished, true
	case Refused:
		return Dead, true
	}
	return "", false // Free, or unreadable
}

// clockSkew is how far apart workspaces' clocks may be; a lease's Until
// further ahead than its lifetime and this is not believed.
const clockSkew = 5 * time.Minute

// Mark records how this workspace's renewal of login stands, while it holds
// the lease: Calling before it sends the refresh token, then Done, Refused or
// Free.
func (c *Claimer) Mark(ctx context.Context, login string, s State) error {
	l := Lease{Holder: c.Holder, Login: login, State: s, Until: c.Now().Add(c.TTL)}
	if err := c.Store.WriteLease(ctx, l.record()); err != nil {
		return fmt.Errorf("recording the renewal lease as %s: %w", s, err)
	}
	return nil
}
