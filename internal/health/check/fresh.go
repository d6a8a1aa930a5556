package check

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Codex renews its ChatGPT tokens on first use once the access token is
// within codexRefreshLead of expiring, or the last refresh is older than
// codexRefreshAge (Codex 0.169.0). Each renewal spends the refresh token
// every other copy of the file still holds.
const (
	codexRefreshLead = 5 * time.Minute
	codexRefreshAge  = 8 * 24 * time.Hour
)

// futureSkew is how far ahead of now a copy's dates may lie and still be
// believed. Clocks of workspaces differ by seconds, not minutes; a date
// further ahead is an error or a forgery, and trusting it would make that
// copy win every comparison for as long as the date stays ahead.
const futureSkew = 5 * time.Minute

// Stamp dates one copy of a credential file that its program rewrites,
// so that two copies can be put in order. Only kinds that carry dates have
// stamps: today Codex's auth.json with ChatGPT tokens.
type Stamp struct {
	LastRefresh  time.Time // "last_refresh": when Codex last renewed the tokens
	AccessExp    time.Time // the access token's exp
	AccessIssued time.Time // the access token's iat
	IDIssued     time.Time // the ID token's iat
}

// Dated reports whether files checked with kind can carry a Stamp.
func Dated(kind Kind) bool { return kind == KindCodex }

// Date reads the Stamp of content checked with kind. ok is false when the
// kind carries no dates, when content does not parse as that kind, or when
// it holds no ChatGPT tokens (an API-key file does not age).
func Date(kind Kind, content []byte) (s Stamp, ok bool) {
	if kind != KindCodex {
		return Stamp{}, false
	}
	if _, err := parseCodexAuth(content); err != nil {
		return Stamp{}, false
	}
	var f struct {
		LastRefresh *string `json:"last_refresh"`
		Tokens      *struct {
			ID     string `json:"id_token"`
			Access string `json:"access_token"`
		} `json:"tokens"`
	}
	if json.Unmarshal(content, &f) != nil || f.Tokens == nil {
		return Stamp{}, false
	}
	if f.LastRefresh != nil {
		s.LastRefresh, _ = time.Parse(time.RFC3339Nano, *f.LastRefresh)
	}
	s.AccessExp, _ = jwtExpiry(f.Tokens.Access)
	s.AccessIssued = claimTime(f.Tokens.Access, "iat")
	s.IDIssued = claimTime(f.Tokens.ID, "iat")
	return s, true
}

// claimTime reads a NumericDate claim as whole seconds; zero when the
// token or the claim is unusable.
func claimTime(token, claim string) time.Time {
	claims, err := jwtPayload(token)
	if err != nil {
		return time.Time{}
	}
	n, err := strconv.ParseInt(string(claims[claim]), 10, 64)
	if err != nil || n <= 0 || n > maxExp {
		return time.Time{}
	}
	return time.Unix(n, 0).UTC()
}

// RefreshAt is when Codex will renew this copy on its next use, the zero
// time when the copy carries neither date Codex goes by.
func (s Stamp) RefreshAt() time.Time {
	var at time.Time
	if !s.AccessExp.IsZero() {
		at = s.AccessExp.Add(-codexRefreshLead)
	}
	if !s.LastRefresh.IsZero() {
		if age := s.LastRefresh.Add(codexRefreshAge); at.IsZero() || age.Before(at) {
			at = age
		}
	}
	return at
}

// Lifetime is how long the access token was issued for, zero when unknown.
func (s Stamp) Lifetime() time.Duration {
	if s.AccessIssued.IsZero() || !s.AccessExp.After(s.AccessIssued) {
		return 0
	}
	return s.AccessExp.Sub(s.AccessIssued)
}

// Order is how two copies compare.
type Order int

const (
	Unknown Order = iota // no date both copies carry tells them apart
	Same                 // the same renewal: every date both carry is equal
	Newer                // the first copy is the newer
	Older                // the first copy is the older
)

func (o Order) String() string {
	return [...]string{"unknown", "same", "newer", "older"}[o]
}

// Compare puts a and b in order, and says in words which date decided.
//
// Dates are tried in order: last_refresh (Codex sets it on every renewal),
// then the access token's exp (a renewal issues a later one), then the ID
// token's iat (for files written without last_refresh). The first date that
// both copies carry and that differs decides. A date only one copy carries
// cannot compare them and is passed over, as is a renewal or issue time
// more than five minutes after now (see futureSkew); an expiry lies ahead
// by nature. When every date both carry is equal,
// the copies are the Same renewal; when they share none, the order is
// Unknown, and the caller falls back to what it does for undated files.
func Compare(a, b Stamp, now time.Time) (Order, string) {
	keys := []struct {
		name string
		a, b time.Time
		past bool // a date of something that has happened
	}{
		{"last_refresh", a.LastRefresh, b.LastRefresh, true},
		{"the access token's expiry", a.AccessExp, b.AccessExp, false},
		{"the ID token's issue time", a.IDIssued, b.IDIssued, true},
	}
	horizon := now.Add(futureSkew)
	compared := false
	for _, k := range keys {
		usable := func(t time.Time) bool { return !t.IsZero() && (!k.past || !t.After(horizon)) }
		if !usable(k.a) || !usable(k.b) {
			continue
		}
		compared = true
		switch {
		case k.a.After(k.b):
			return Newer, fmt.Sprintf("%s %s is after %s", k.name, stampTime(k.a), stampTime(k.b))
		case k.a.Before(k.b):
			return Older, fmt.Sprintf("%s %s is before %s", k.name, stampTime(k.a), stampTime(k.b))
		}
	}
	if compared {
		return Same, "every date both copies carry is equal"
	}
	return Unknown, "the copies carry no date in common"
}

// stampTime renders a date in a comparison: UTC, to the second, since
// renewals minutes apart must be told apart.
func stampTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }
