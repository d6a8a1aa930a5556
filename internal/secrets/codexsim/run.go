package codexsim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Exec is what one Run of `codex exec` did.
type Exec struct {
	Refreshes  []Refresh   // the refreshes this run sent, as the Issuer recorded them
	ModelCalls []ModelCall // the model calls this run made
	// Reused: the Issuer answered refresh_token_reused to this run. This is
	// the authoritative signal; ReusedSaid is what Codex's output says.
	Reused     bool
	ReusedSaid bool
	ExitCode   int // -1 when it did not exit by itself (killed, timed out)
	Output     string
	Started    time.Time
	Took       time.Duration
}

// RefreshedGens returns the generations this run received, in order.
func (e Exec) RefreshedGens() []int {
	var gens []int
	for _, r := range e.Refreshes {
		if r.Outcome == OK {
			gens = append(gens, r.Gen)
		}
	}
	return gens
}

var runSeq atomic.Int64

// Run runs `codex exec` once for a workspace home (CODEX_HOME is
// home/.codex, which must hold the auth.json to use) against the Issuer, and
// returns what the Issuer saw of it. A plain exec is the smallest command that
// refreshes: `codex login status` never does, and `codex doctor` probes real
// OpenAI endpoints. An error means the run could not start or ctx ended; a
// non-zero exit is reported in Exec, not as an error.
//
// Run must be called where the CLI can reach nothing but the Issuer: inside
// InNetns. Concurrent runs are fine; each gets its own URL prefix so that its
// records are told apart.
func (s *Issuer) Run(ctx context.Context, codexPath, home string) (Exec, error) {
	id := "r" + strconv.FormatInt(runSeq.Add(1), 10)
	base := s.srv.URL + "/run/" + id
	cmd := exec.CommandContext(ctx, codexPath, Args(base)...)
	cmd.Dir = home // not the repository: Codex would read its AGENTS.md and git state
	cmd.Env = Env(home, base)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second // a grandchild holding the output open must not hang the test

	start := time.Now()
	err := cmd.Run()
	e := Exec{Started: start, Took: time.Since(start), Output: out.String(), ExitCode: cmd.ProcessState.ExitCode()}
	if ctx.Err() != nil {
		return e, fmt.Errorf("codexsim: codex exec: %w", ctx.Err())
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		return e, fmt.Errorf("codexsim: codex exec: %w", err)
	}
	for _, r := range s.Refreshes() {
		if r.Run == id {
			e.Refreshes = append(e.Refreshes, r)
			e.Reused = e.Reused || r.Outcome == Reused
		}
	}
	for _, c := range s.ModelCalls() {
		if c.Run == id {
			e.ModelCalls = append(e.ModelCalls, c)
		}
	}
	e.ReusedSaid = saysReused(e.Output)
	return e, nil
}

// saysReused reports whether Codex's output tells of a reused refresh token:
// it prints the error code, or explains that the token was already used.
func saysReused(out string) bool {
	o := strings.ToLower(out)
	return strings.Contains(o, "refresh_token_reused") || strings.Contains(o, "already been used") ||
		strings.Contains(o, "already used")
}

// Args are the arguments of `codex exec` against an Issuer at base (its URL,
// or a Run's prefix of it). Each keeps the run quick and on loopback:
//
//   - chatgpt_base_url: backend calls (account checks, settings, model list)
//     go to the Issuer, which answers 404 at once.
//   - a model provider of our own with requires_openai_auth: the model call
//     goes to the Issuer with the ChatGPT login's access token, refreshed as
//     usual. The built-in "openai" provider ignores chatgpt_base_url for model
//     calls (it goes to chatgpt.com) and first needs "workspace routing
//     discovery", which accepts only an https backend origin.
//   - supports_websockets=false: straight to the HTTP Responses stream,
//     without five websocket attempts first.
//   - analytics and OpenTelemetry metrics off: otherwise Codex exports metrics
//     to ab.chatgpt.com on exit, which costs a 5 s DNS timeout offline.
//   - plugins and apps off, no update check, --ephemeral (no session files),
//     --ignore-user-config (a config.toml in the home cannot add MCP servers
//     or other endpoints).
func Args(base string) []string {
	return []string{
		"exec", "--skip-git-repo-check", "--ephemeral", "--ignore-user-config", "--color", "never",
		"-c", "chatgpt_base_url=" + strconv.Quote(base+BackendPath),
		"-c", `model_provider="codexsim"`,
		"-c", fmt.Sprintf(`model_providers.codexsim={name="codexsim",base_url=%s,wire_api="responses",requires_openai_auth=true,supports_websockets=false}`,
			strconv.Quote(base+BackendPath+"codex")),
		"-c", "analytics.enabled=false",
		"-c", `otel.metrics_exporter="none"`,
		"-c", "check_for_update_on_startup=false",
		"--disable", "plugins", "--disable", "apps",
		"Reply with one word.",
	}
}

// Env is the whole environment of a Codex run for home against an Issuer at
// base. Nothing is inherited from the test's environment, so that no
// OPENAI_API_KEY, CODEX_API_KEY, proxy or RUST_LOG setting of the machine can
// change what Codex does.
func Env(home, base string) []string {
	return []string{
		"HOME=" + home,
		"CODEX_HOME=" + filepath.Join(home, ".codex"),
		"CODEX_REFRESH_TOKEN_URL_OVERRIDE=" + base + TokenPath,
		"CODEX_REVOKE_TOKEN_URL_OVERRIDE=" + base + RevokePath,
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"LANG=C.UTF-8",
		"TERM=dumb",
	}
}
