// Package endpoint makes the one call to Codex's token endpoint that a
// renewal is (package renew decides when and who). It lives apart, and only
// the helper egoagent-op links it, so that egoagent itself carries no HTTP
// client.
package endpoint

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/veraticus/egoengine/internal/secrets/renew"
)

// requestTimeout bounds one call to the token endpoint. Past it the refresh
// token may or may not be spent (renew.Unknown).
const requestTimeout = 30 * time.Second

// Refresh renews the login in current (an auth.json with ChatGPT tokens)
// with one call to the token endpoint at url, as Codex 0.169.0 makes it, and
// returns auth.json as Codex writes it after a renewal of its own
// (renew.Renewed). An error is a *renew.CallError.
func Refresh(ctx context.Context, client *http.Client, url string, current []byte, now func() time.Time) ([]byte, error) {
	rt, err := renew.RefreshToken(current)
	if err != nil {
		return nil, err
	}
	body, _ := json.Marshal(map[string]string{
		"client_id":      renew.ClientID,
		"grant_type":     "refresh_token",
		"refresh_reason": "proactive_expiry",
		"refresh_token":  rt,
	})
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, &renew.CallError{Fate: renew.Unsent, Msg: fmt.Sprintf("token endpoint %q: %v", url, err)}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, &renew.CallError{Fate: fateOf(err), Msg: fmt.Sprintf("token endpoint %s: %v", req.URL.Redacted(), stripURL(err))}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, &renew.CallError{Fate: renew.Unknown, Msg: fmt.Sprintf("token endpoint %s: reading the answer: %v", req.URL.Redacted(), err)}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, renew.Refusal(resp.StatusCode, raw)
	}
	var got struct {
		IDToken      string `json:"id_token"`
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	if json.Unmarshal(raw, &got) != nil || got.IDToken == "" || got.AccessToken == "" || got.RefreshToken == "" {
		// The old token is most likely spent, and the answer gives no new
		// one: nothing to write.
		return nil, &renew.CallError{Fate: renew.Unknown, Msg: fmt.Sprintf("token endpoint answered 200 without id_token, access_token and refresh_token (%d bytes)", len(raw))}
	}
	out, err := renew.Renewed(current, got.IDToken, got.AccessToken, got.RefreshToken, now())
	if err != nil {
		return nil, &renew.CallError{Fate: renew.Unknown, Msg: "building auth.json: " + err.Error()}
	}
	return out, nil
}

// fateOf says whether a transport error happened before the request left:
// only a failed dial (refused, no route, no such host) is sure of that.
func fateOf(err error) renew.Fate {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return renew.Unsent
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return renew.Unsent
	}
	return renew.Unknown
}

// stripURL drops the URL that net/http repeats in its errors; the caller
// names the endpoint once.
func stripURL(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}
