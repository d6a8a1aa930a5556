// Package codexsim stands in for the two OpenAI services the real Codex CLI
// talks to when it refreshes a ChatGPT login: the OAuth token endpoint (which
// rotates refresh tokens, each usable once) and the ChatGPT backend that
// `codex exec` sends its model call to. With it, tests run the real, pinned
// CLI (scripts/ensure-codex.sh) against auth.json files egoagent installed and
// see which refresh token each copy presented, and so catch the failure
// egoagent must prevent: a stale copy presenting a token already spent
// (refresh_token_reused), which leaves Codex logged out.
//
// It is test support, imported by tests only. It lives under internal/ rather
// than next to a test because the Nix build's source filter takes Go code only
// from cmd/, internal/ and bench/.
//
// The three parts:
//
//   - Issuer: one HTTP server on 127.0.0.1 for both services.
//   - InNetns: runs a test in a network namespace of its own, where loopback
//     is the only interface, so the real CLI reaches nothing but the Issuer.
//   - Issuer.Run: one `codex exec` for a home, with the flags and environment
//     that keep it quick and offline, and what the Issuer saw of it.
package codexsim

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RefreshWindow is how close to its expiry Codex 0.169.0 refreshes an access
// token: anything expiring within 5 minutes, before it uses it. Measured
// with an exec started as the file was written: a token with 303 s left was
// refreshed, one with 306 s left was not (exec asks 0.4 to 1.2 s after start).
const RefreshWindow = 5 * time.Minute

// DefaultLifetime is the lifetime of the tokens an Issuer hands out unless
// told otherwise: just over RefreshWindow, so that Codex does not refresh a
// token it has just received (a lifetime under the window makes one exec
// refresh in a loop), yet the same token is due again a few seconds later.
const DefaultLifetime = RefreshWindow + 10*time.Second

// ClientID is the OAuth client id Codex 0.169.0 sends; the ID token's
// audience carries it, as OpenAI's do.
const ClientID = "app_EMoamEEZ73f0CkXaXp7hrann"

// Paths the Issuer serves.
const (
	TokenPath   = "/oauth/token"  // CODEX_REFRESH_TOKEN_URL_OVERRIDE
	RevokePath  = "/oauth/revoke" // CODEX_REVOKE_TOKEN_URL_OVERRIDE (logout only; answered 200)
	BackendPath = "/backend-api/" // chatgpt_base_url; model calls go to BackendPath+"codex/responses"
)

// Reply is the text of the backend's one canned answer; `codex exec` prints it.
const Reply = "codexsim reply"

// Outcome is what the Issuer answered to one refresh.
type Outcome string

const (
	OK      Outcome = "ok"      // new tokens issued
	Reused  Outcome = "reused"  // a token already spent: 401 refresh_token_reused
	Unknown Outcome = "unknown" // a token the Issuer never issued: 401 refresh_token_invalidated
)

// Refresh is the Issuer's record of one refresh request.
type Refresh struct {
	At       time.Time
	Run      string // the Run that sent it ("" for requests outside Run)
	Token    string // the refresh token presented
	TokenGen int    // its generation, -1 when it is not one of ours
	Reason   string // refresh_reason as Codex sent it ("proactive_expiry", ...)
	Outcome  Outcome
	Gen      int // the generation issued; -1 unless Outcome is OK
}

// Issuer is the stand-in token endpoint and backend. Create it with
// NewIssuer; it is safe for concurrent use.
//
// Tokens form generations: Seed gives generation 0, and a refresh of a
// generation-n token gives n+1. Every token carries its generation (the "gen"
// claim of both JWTs, and "rt-<gen>-<random>" for the refresh token) so that a
// test can tell which of two copies is newer. Each refresh token works once.
// Reuse is not punished beyond the one answer: the newer tokens of the same
// login stay valid (whether OpenAI revokes the whole family is not known here).
type Issuer struct {
	// Lifetime of the tokens issued from now on (DefaultLifetime from
	// NewIssuer). Set it before the first request.
	Lifetime  time.Duration
	AccountID string // chatgpt_account_id of the login ("acct-codexsim")

	srv *httptest.Server
	key []byte // HS256 key: lets the backend tell our access tokens from others

	mu        sync.Mutex
	refresh   map[string]*rtState // every refresh token issued
	refreshes []Refresh
	calls     []ModelCall
}

type rtState struct {
	gen   int
	spent bool
}

// ModelCall is the backend's record of one model call (POST .../responses).
type ModelCall struct {
	At       time.Time
	Run      string
	Gen      int  // generation of the access token presented, -1 when unreadable
	Accepted bool // false: answered 401 (missing, forged or expired access token)
}

// NewIssuer starts an Issuer on 127.0.0.1 (a free port). Close it when done.
func NewIssuer() *Issuer {
	s := &Issuer{
		Lifetime:  DefaultLifetime,
		AccountID: "acct-codexsim",
		key:       randomBytes(32),
		refresh:   map[string]*rtState{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// Reused returns the refreshes answered refresh_token_reused: each is a
// copy that held a spent token when its program renewed it.
func (s *Issuer) Reused() []Refresh {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Refresh
	for _, r := range s.refreshes {
		if r.Outcome == Reused {
			out = append(out, r)
		}
	}
	return out
}

// Newest returns the highest generation issued so far (0: only the seed).
func (s *Issuer) Newest() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.refreshes {
		n = max(n, r.Gen)
	}
	return n
}

// URL is the server's base, http://127.0.0.1:PORT.
func (s *Issuer) URL() string { return s.srv.URL }

// TokenURL is the value for CODEX_REFRESH_TOKEN_URL_OVERRIDE.
func (s *Issuer) TokenURL() string { return s.srv.URL + TokenPath }

// BackendURL is the value for Codex's chatgpt_base_url.
func (s *Issuer) BackendURL() string { return s.srv.URL + BackendPath }

// Close stops the server.
func (s *Issuer) Close() { s.srv.Close() }

// Refreshes returns every refresh recorded so far, oldest first.
func (s *Issuer) Refreshes() []Refresh {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Refresh(nil), s.refreshes...)
}

// ModelCalls returns every model call recorded so far, oldest first.
func (s *Issuer) ModelCalls() []ModelCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ModelCall(nil), s.calls...)
}

// Seed returns the auth.json of a fresh login (generation 0), in the shape
// Codex writes: ChatGPT tokens, account_id and last_refresh (now). Its access
// token expires in expiresIn: under RefreshWindow, Codex refreshes it on its
// next use. Each call is a new login with its own refresh token; to give two
// homes the same copy, write the same bytes to both.
func (s *Issuer) Seed(expiresIn time.Duration) []byte {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.issue(0, now, now.Add(expiresIn))
	return mustJSON(map[string]any{
		"auth_mode":      "chatgpt",
		"OPENAI_API_KEY": nil,
		"tokens": map[string]any{
			"id_token": t.IDToken, "access_token": t.AccessToken,
			"refresh_token": t.RefreshToken, "account_id": s.AccountID,
		},
		"last_refresh": now.UTC().Format(time.RFC3339Nano),
	})
}

// tokenSet is the token endpoint's answer to a successful refresh.
type tokenSet struct {
	IDToken      string `json:"id_token"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
}

// issue mints generation gen and registers its refresh token. Callers hold mu.
func (s *Issuer) issue(gen int, now, exp time.Time) tokenSet {
	auth := map[string]any{
		"chatgpt_account_id": s.AccountID,
		"chatgpt_plan_type":  "pro",
		"chatgpt_user_id":    "user-codexsim",
		"user_id":            "user-codexsim",
	}
	common := func(aud any) map[string]any {
		return map[string]any{
			"iss": "https://auth.openai.com", "sub": "codexsim", "aud": aud,
			"iat": now.Unix(), "exp": exp.Unix(), "gen": gen,
			"https://api.openai.com/auth": auth,
		}
	}
	id := common([]string{ClientID})
	id["email"] = "codexsim@example.invalid"
	access := common([]string{"https://api.openai.com/v1"})
	access["scp"] = []string{"openid", "profile", "email", "offline_access"}

	rt := fmt.Sprintf("rt-%d-%s", gen, hex.EncodeToString(randomBytes(12)))
	s.refresh[rt] = &rtState{gen: gen}
	return tokenSet{
		IDToken: s.jwt(id), AccessToken: s.jwt(access), RefreshToken: rt,
		TokenType: "Bearer", ExpiresIn: int64(exp.Sub(now).Seconds()),
	}
}

func (s *Issuer) serve(w http.ResponseWriter, r *http.Request) {
	// Run prefixes every URL it gives Codex with /run/<id>, so that the
	// records say which run sent what even when runs overlap.
	run, path := "", r.URL.Path
	if rest, ok := strings.CutPrefix(path, "/run/"); ok {
		run, path, _ = strings.Cut(rest, "/")
		path = "/" + path
	}
	switch {
	case path == TokenPath && r.Method == http.MethodPost:
		s.serveRefresh(w, r, run)
	case path == RevokePath && r.Method == http.MethodPost:
		writeJSON(w, http.StatusOK, map[string]any{})
	case strings.HasPrefix(path, BackendPath) && strings.HasSuffix(path, "/responses") && r.Method == http.MethodPost:
		s.serveResponses(w, r, run)
	default:
		// Everything else Codex asks the backend for at startup (model list,
		// account checks, settings) is optional to it: a 404 is answered at
		// once and not retried.
		http.NotFound(w, r)
	}
}

// serveRefresh answers grant_type=refresh_token as Codex 0.169.0 sends it: a
// JSON body (Content-Type application/json) with client_id, grant_type,
// refresh_reason and refresh_token.
func (s *Issuer) serveRefresh(w http.ResponseWriter, r *http.Request, run string) {
	var req struct {
		ClientID      string `json:"client_id"`
		GrantType     string `json:"grant_type"`
		RefreshReason string `json:"refresh_reason"`
		RefreshToken  string `json:"refresh_token"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil ||
		req.GrantType != "refresh_token" || req.RefreshToken == "" {
		writeJSON(w, http.StatusBadRequest, map[string]any{
			"error": "invalid_request", "error_description": "want a JSON body with grant_type refresh_token",
		})
		return
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := Refresh{At: now, Run: run, Token: req.RefreshToken, TokenGen: -1, Reason: req.RefreshReason, Gen: -1}
	st := s.refresh[req.RefreshToken]
	switch {
	case st == nil:
		rec.Outcome = Unknown
		s.refreshes = append(s.refreshes, rec)
		writeJSON(w, http.StatusUnauthorized, oauthError("refresh_token_invalidated",
			"Your refresh token has been invalidated. Please try signing in again."))
	case st.spent:
		rec.TokenGen, rec.Outcome = st.gen, Reused
		s.refreshes = append(s.refreshes, rec)
		writeJSON(w, http.StatusUnauthorized, oauthError("refresh_token_reused",
			"Your refresh token has already been used to generate a new access token. Please try signing in again."))
	default:
		st.spent = true
		t := s.issue(st.gen+1, now, now.Add(s.Lifetime))
		rec.TokenGen, rec.Outcome, rec.Gen = st.gen, OK, st.gen+1
		s.refreshes = append(s.refreshes, rec)
		writeJSON(w, http.StatusOK, t)
	}
}

// oauthError is the error shape Codex recognises on a failed refresh: it
// reads error.code and treats refresh_token_reused, _expired and
// _invalidated as permanent for the token it sent.
func oauthError(code, msg string) map[string]any {
	return map[string]any{"error": map[string]any{"code": code, "message": msg, "type": "invalid_request_error"}}
}

// serveResponses is the whole model: one canned assistant message as the
// Responses API's server-sent events, which is all `codex exec` needs to
// finish with exit 0. The access token must be one of ours and unexpired,
// as the real backend would insist; otherwise 401, so that a Codex whose
// refresh failed cannot succeed anyway.
func (s *Issuer) serveResponses(w http.ResponseWriter, r *http.Request, run string) {
	gen, ok := s.checkAccess(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
	s.mu.Lock()
	s.calls = append(s.calls, ModelCall{At: time.Now(), Run: run, Gen: gen, Accepted: ok})
	s.mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{
			"code": "token_expired", "message": "Provided authentication token is expired or invalid.",
		}})
		return
	}
	events := []map[string]any{
		{"type": "response.created", "response": map[string]any{"id": "resp_codexsim"}},
		{"type": "response.output_item.done", "item": map[string]any{
			"type": "message", "role": "assistant", "id": "msg_codexsim",
			"content": []any{map[string]any{"type": "output_text", "text": Reply}},
		}},
		{"type": "response.completed", "response": map[string]any{
			"id": "resp_codexsim", "usage": map[string]any{"input_tokens": 0, "output_tokens": 0, "total_tokens": 0},
		}},
	}
	var b strings.Builder
	for _, e := range events {
		data, _ := json.Marshal(e)
		fmt.Fprintf(&b, "event: %s\ndata: %s\n\n", e["type"], data)
	}
	w.Header().Set("Content-Type", "text/event-stream")
	_, _ = w.Write([]byte(b.String()))
}

// checkAccess verifies an access token's signature and expiry and returns
// its generation.
func (s *Issuer) checkAccess(tok string) (gen int, ok bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || !hmac.Equal([]byte(parts[2]), []byte(s.sign(parts[0]+"."+parts[1]))) {
		return -1, false
	}
	claims, err := payload(tok)
	if err != nil {
		return -1, false
	}
	gen, exp := -1, int64(0)
	if g, ok := claims["gen"].(float64); ok {
		gen = int(g)
	}
	if e, ok := claims["exp"].(float64); ok {
		exp = int64(e)
	}
	return gen, time.Now().Unix() < exp
}

// jwt signs claims with HS256. Codex never checks the signature (it has no
// key), but it rejects a JWT with an empty signature part, and the backend
// uses the signature to refuse tokens the Issuer did not make.
func (s *Issuer) jwt(claims map[string]any) string {
	h := b64json(map[string]any{"alg": "HS256", "typ": "JWT", "kid": "codexsim"})
	unsigned := h + "." + b64json(claims)
	return unsigned + "." + s.sign(unsigned)
}

func (s *Issuer) sign(unsigned string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(unsigned))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Gen returns the generation of an auth.json's tokens (the "gen" claim of
// its access token), so that a test can order copies of the file.
func Gen(authJSON []byte) (int, error) {
	var f struct {
		Tokens struct {
			AccessToken string `json:"access_token"`
		} `json:"tokens"`
	}
	if err := json.Unmarshal(authJSON, &f); err != nil {
		return 0, fmt.Errorf("codexsim: auth.json: %w", err)
	}
	claims, err := payload(f.Tokens.AccessToken)
	if err != nil {
		return 0, err
	}
	g, ok := claims["gen"].(float64)
	if !ok {
		return 0, errors.New("codexsim: access token has no gen claim (not from an Issuer)")
	}
	return int(g), nil
}

// TokenGen returns the generation encoded in a refresh token ("rt-<gen>-..."),
// or -1.
func TokenGen(refreshToken string) int {
	f := strings.SplitN(refreshToken, "-", 3)
	if len(f) != 3 || f[0] != "rt" {
		return -1
	}
	g, err := strconv.Atoi(f[1])
	if err != nil {
		return -1
	}
	return g
}

func payload(tok string) (map[string]any, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, errors.New("codexsim: not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("codexsim: JWT payload: %w", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		return nil, fmt.Errorf("codexsim: JWT payload: %w", err)
	}
	return claims, nil
}

func b64json(v any) string { return base64.RawURLEncoding.EncodeToString(mustJSONCompact(v)) }

func mustJSONCompact(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only maps of plain values are passed
	}
	return b
}

func mustJSON(v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic(err)
	}
	return append(b, '\n')
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(mustJSONCompact(v))
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return b
}
