// Package renew renews a shared Codex login ahead of Codex, once for every
// workspace that holds a copy.
//
// Codex renews a ChatGPT login on its first use after the access token is
// within 5 minutes of expiry, or after last_refresh is 8 days old, and each
// refresh token works once. Every workspace's copy reaches that point at the
// same moment, so Codex processes in two workspaces that run just after it
// both present the same refresh token, and all but one fail with
// refresh_token_reused. Codex re-reads auth.json before it renews and adopts
// a changed file instead, so a new login in place everywhere before the
// point means no Codex renews at all.
//
// This package has the three parts of that: when to renew (At), who renews
// (Claim, a lease kept in the source, which is the only service the
// workspaces share), and the renewal itself (Refresh, the request Codex
// sends, and the file Codex would write). Installing and uploading the new
// file is the engine's, as for any other copy.
package renew

import "time"

// Codex's own renewal rules (Codex 0.169.0; docs/egoagent.md) live in
// check.Stamp.RefreshAt. Lead is how long before that point egoagent
// renews: six looks' worth. The renewal itself takes half a minute (the
// lease's settle time, a pass, the upload), then every other workspace
// installs the new copy at its next look, with looks to spare for one that
// fails, before any Codex reaches the point. A look comes every thirtieth of the token's lifetime,
// between LookMin and LookMax (the daemon's near-renewal looks).
const (
	LookMin   = 10 * time.Second
	LookMax   = 5 * time.Minute
	leadLooks = 6
)

// Look is the gap between two looks for a newer copy near a renewal, for a
// token issued for life (zero when unknown).
func Look(life time.Duration) time.Duration {
	if life <= 0 {
		return LookMax
	}
	return min(LookMax, max(LookMin, life/30))
}

// Lead is how long before Codex's renewal point egoagent renews.
func Lead(life time.Duration) time.Duration { return leadLooks * Look(life) }

// At is when to renew a copy that Codex would renew at refreshAt: the zero
// time when refreshAt is.
func At(refreshAt time.Time, life time.Duration) time.Time {
	if refreshAt.IsZero() {
		return time.Time{}
	}
	return refreshAt.Add(-Lead(life))
}
