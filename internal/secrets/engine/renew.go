package engine

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/veraticus/egoengine/internal/health/check"
	"github.com/veraticus/egoengine/internal/health/printable"
	"github.com/veraticus/egoengine/internal/health/statedir"
	"github.com/veraticus/egoengine/internal/health/status"
	"github.com/veraticus/egoengine/internal/secrets/renew"
	"github.com/veraticus/egoengine/internal/secrets/secretfile"
	"github.com/veraticus/egoengine/internal/secrets/source"
)

// leaseStore binds a source's lease to one login's reference.
type leaseStore struct {
	l   source.Leaser
	ref source.Ref
}

func (s leaseStore) ReadLease(ctx context.Context) (string, error) { return s.l.ReadLease(ctx, s.ref) }
func (s leaseStore) WriteLease(ctx context.Context, rec string) error {
	return s.l.WriteLease(ctx, s.ref, rec)
}

// loginID names one login in a lease: its dates, which every renewal
// changes, never a token.
func loginID(s check.Stamp) string {
	return s.LastRefresh.UTC().Format(time.RFC3339Nano) + " exp " + strconv.FormatInt(s.AccessExp.Unix(), 10)
}

// renewLogin renews the login of a secret with renew = true when it is due
// (or early, when a person asked) and this workspace wins the lease. The
// installed file is 1Password's copy (o is fresh and nothing was written),
// so every workspace holds the same login and one renewal serves them all. The new login is written
// here first (so that a failure later loses nothing), then uploaded as any
// newer local copy is; the other workspaces install it at their next look.
//
// What stops, and where: before the call nothing is spent, and the lease
// is let go or expires; after it, the lease says so, and no workspace
// presents that refresh token again (see package renew).
func (e *Engine) renewLogin(ctx context.Context, t *target, sec *status.Secret, fp *statedir.Fingerprinter, o Outcome, early bool) Outcome {
	now := e.now()
	stamp, ok := check.Date(t.check, t.value)
	if !ok || stamp.LastRefresh.IsZero() && stamp.AccessExp.IsZero() {
		return o
	}
	if at := renew.At(stamp.RefreshAt(), stamp.Lifetime()); at.IsZero() || now.Before(at) && !early {
		return o
	}
	record := func(note string, failed bool, class source.Class) Outcome {
		sec.Renewal = &status.Renewal{At: now, Note: note, Failed: failed, Class: class}
		if failed {
			e.Log.Warn("renewal failed", zap.String("secret", sec.Name), zap.String("class", string(class)), zap.String("why", note))
		} else {
			e.Log.Info("renewal", zap.String("secret", sec.Name), zap.String("note", note))
		}
		return o
	}
	leaser, ok := e.Source.(source.Leaser)
	refresher, ok2 := e.Source.(source.Refresher)
	if !ok || !ok2 {
		return record("this source keeps no leases or cannot renew; set renew = false", true, ClassLocal)
	}
	login := loginID(stamp)
	c := renew.NewClaimer(leaseStore{leaser, t.ref}, e.holder())
	v, lease, err := c.Claim(ctx, login)
	if err != nil {
		return record("could not take the renewal lease: "+err.Error()+"; Codex renews by itself as before", true, source.ClassOf(err))
	}
	by := printable.Name(lease.Holder)
	switch v {
	case renew.Held, renew.Lost:
		return record(fmt.Sprintf("%s renews it (lease until %s); its new login arrives at the next look", by, lease.Until.UTC().Format(time.RFC3339)), false, "")
	case renew.Unfinished:
		return record(fmt.Sprintf("%s began renewing this login and did not finish (%s): its refresh token may be spent, so egoagent does not present it again; the new login arrives if that workspace uploads it, else Codex renews (or asks to log in again) on its own", by, lease.State), true, ClassLocal)
	case renew.Dead:
		return record("the token endpoint refused this login for good when "+by+" renewed it: sign in to Codex again (codex login) in one workspace; write-back takes the new login to the others", true, ClassCheck)
	case renew.Slow:
		return record("1Password answered too slowly to agree on one renewer safely; trying again at the next look", true, source.ClassUnreachable)
	}

	// Won. Waiting out the claim took seconds: a Codex may have renewed
	// meanwhile, here or elsewhere, and only an untouched login is renewed.
	free := func(why string) Outcome {
		_ = c.Mark(ctx, login, renew.Free)
		return record(why, false, "")
	}
	if !secretfile.Same(t.path, t.value, t.mode) {
		return free("the file changed while egoagent waited for the lease; the next pass looks at it")
	}
	if cur, err := leaser.Current(ctx, t.ref); err != nil || !bytes.Equal(cur, t.value) {
		return free("1Password's copy changed, or could not be read again, while egoagent waited for the lease; the next pass looks at it")
	}
	if err := c.Mark(ctx, login, renew.Calling); err != nil {
		return record(err.Error()+"; nothing was sent, and the next look tries again", true, source.ClassOf(err))
	}
	next, err := refresher.RefreshLogin(ctx, t.value)
	if err != nil {
		var ce *renew.CallError
		if !errors.As(err, &ce) {
			// A source that says nothing of the token's fate: assume
			// the worst.
			ce = &renew.CallError{Fate: renew.Unknown, Msg: err.Error()}
		}
		switch ce.Fate {
		case renew.Unsent:
			_ = c.Mark(ctx, login, renew.Free)
			return record(ce.Msg+"; nothing was spent, and Codex renews by itself as before", true, source.ClassUnreachable)
		case renew.Spent:
			if renewedElsewhere(ctx, leaser, t.ref, t.value) {
				// Another workspace renewed in the same moment, which the
				// lease rules out unless 1Password answered a read with an
				// older lease. Its login is in 1Password: nothing is lost.
				return record(ce.Msg+", but another workspace renewed at the same moment and 1Password holds its newer login; it arrives at the next look", false, "")
			}
			_ = c.Mark(ctx, login, renew.Refused)
			return record(ce.Msg, true, ClassCheck)
		default:
			// The lease stays Calling: nobody presents this token again.
			return record(ce.Msg+"; the refresh token may be spent, so no workspace presents it again; Codex renews (or asks to log in again) on its own", true, source.ClassUnreachable)
		}
	}
	if r := e.check(ctx, t.check, next); !r.OK {
		// The old token is spent: keep the new login whatever the check
		// says (it is the only one left), and say so.
		e.Log.Warn("the renewed login fails its check", zap.String("secret", sec.Name), zap.String("check", r.Summary))
	}
	if err := secretfile.Write(e.Home, t.path, next, t.mode); err != nil {
		_ = c.Mark(ctx, login, renew.Done)
		return record("renewed, but writing "+t.path+" failed: "+err.Error()+"; the new login is lost and the old one spent: sign in to Codex again", true, ClassLocal)
	}
	// Written here and not yet in 1Password: until the upload succeeds,
	// the state still fingerprints the old copy, so a later pass finds a
	// newer local file that egoagent did not install, and uploads it.
	local, _ := check.Date(t.check, next)
	sec.WriteBack = nil // what upload records now is this upload's
	_, _, _ = e.upload(ctx, t, sec, fp, next, local, "egoagent renewed it ahead of Codex", now)
	_ = c.Mark(ctx, login, renew.Done)
	o.Written = true
	if sec.WriteBack != nil && sec.WriteBack.OK {
		o.Note = "renewed the login ahead of Codex and uploaded it"
		sec.Note = o.Note
		e.date(t, sec)
		o.RefreshAt, o.TokenLife = sec.RefreshAt, sec.TokenLife
		return record("renewed here and uploaded", false, "")
	}
	o.State, o.Note, o.Error, o.Class = sec.State, sec.Note, sec.Error, sec.ErrorClass
	e.date(t, sec)
	o.RefreshAt, o.TokenLife = sec.RefreshAt, sec.TokenLife
	return record("renewed here; the upload failed and is tried again at the next pass", true, cmp.Or(sec.ErrorClass, source.ClassOther))
}

// renewedElsewhere reports whether 1Password comes to hold a login other
// than old within the time another renewer needs to upload it.
func renewedElsewhere(ctx context.Context, l source.Leaser, ref source.Ref, old []byte) bool {
	for try := range 3 {
		if try > 0 {
			select {
			case <-ctx.Done():
				return false
			case <-time.After(10 * time.Second):
			}
		}
		if cur, err := l.Current(ctx, ref); err == nil && !bytes.Equal(cur, old) {
			return true
		}
	}
	return false
}

// holder names this attempt in the lease: the workspace (its host name)
// and a random part, so that two attempts never pass for one.
func (e *Engine) holder() string {
	b := make([]byte, 4)
	rand.Read(b)
	name := e.Holder
	if name == "" {
		name = "egoagent"
	}
	return name + "/" + hex.EncodeToString(b)
}
