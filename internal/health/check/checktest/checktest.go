// Package checktest helps tests that need the real Codex CLI or Codex-shaped
// auth files: it finds the CLI that scripts/ensure-codex.sh installed, makes
// private staging folders, and builds auth.json contents with real-looking
// (unsigned) JWTs. It also writes the few stand-in commands that a real CLI
// cannot play (one that hangs, one that records how it was called); each is
// named as a stand-in.
//
// Environment:
//
//	EGOAGENT_TEST_CODEX     path of the native codex executable (scripts/ensure-codex.sh prints it)
//	EGOAGENT_REQUIRE_CODEX  "1" turns a missing CLI from a skip into a failure
package checktest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// CodexPath returns the path of the real Codex CLI for this test run. When
// EGOAGENT_TEST_CODEX is unset it skips the test with the reason, or fails it
// when EGOAGENT_REQUIRE_CODEX=1. A set but unusable path always fails.
func CodexPath(t testing.TB) string {
	t.Helper()
	p := os.Getenv("EGOAGENT_TEST_CODEX")
	if p == "" {
		const why = "EGOAGENT_TEST_CODEX is not set: this test needs the real Codex CLI " +
			"(run EGOAGENT_TEST_CODEX=$(scripts/ensure-codex.sh) go test ..., or make test-go)"
		if os.Getenv("EGOAGENT_REQUIRE_CODEX") == "1" {
			t.Fatal(why + "; EGOAGENT_REQUIRE_CODEX=1 makes that a failure")
		}
		t.Skip(why)
	}
	if _, err := exec.LookPath(p); err != nil {
		t.Fatalf("EGOAGENT_TEST_CODEX=%s is not an executable: %v", p, err)
	}
	return p
}

// StageDir returns a fresh private (0700) folder for check staging, removed
// when the test ends. It sits under the user's cache folder rather than /tmp,
// as egoagent's real staging folder does (Codex warns about CODEX_HOME under
// /tmp); where that folder cannot be written (a Nix build sandbox) it falls
// back to t.TempDir().
func StageDir(t testing.TB) string {
	t.Helper()
	if cache, err := os.UserCacheDir(); err == nil {
		base := filepath.Join(cache, "egoengine", "test-stage")
		if err := os.MkdirAll(base, 0o700); err == nil {
			if dir, err := os.MkdirTemp(base, "t-"); err == nil {
				t.Cleanup(func() { _ = os.RemoveAll(dir) })
				return dir
			}
		}
	}
	t.Log("checktest: cache folder not writable; staging under t.TempDir()")
	return t.TempDir()
}

// Canary returns a value unique to this call, for tests that assert a secret
// never shows up where it must not. It is uppercase letters only (24 random
// ones after a fixed prefix), so that every five-character piece of it can be
// searched for without matching ordinary text: Codex prints the last five
// characters of an API key, so finding only the whole value is not enough.
func Canary(t testing.TB) string {
	t.Helper()
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 'A' + b[i]%26
	}
	return "EGOAGENTCANARY" + string(b[:])
}

// Leaks returns the first five-character piece of canary found in s, or "".
func Leaks(s, canary string) string {
	for i := 0; i+5 <= len(canary); i++ {
		if strings.Contains(s, canary[i:i+5]) {
			return canary[i : i+5]
		}
	}
	return ""
}

// JWT returns a compact JWT with claims as its payload and a signature that
// signs nothing: the shape of an OpenAI token, without any key behind it.
func JWT(claims map[string]any) string {
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			panic(err) // only maps of plain values are passed
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	header := map[string]any{"alg": "RS256", "typ": "JWT", "kid": "checktest"}
	return enc(header) + "." + enc(claims) + "." + base64.RawURLEncoding.EncodeToString([]byte("not-a-signature"))
}

// ChatGPT describes a ChatGPT-login auth.json as Codex writes it.
type ChatGPT struct {
	Expires      time.Time // exp of the access token; the ID token expires an hour after issue
	RefreshToken string    // default "rt_checktest"; put a Canary here to trace the secret
	AccountID    string    // default "acct-checktest"
	LastRefresh  time.Time // default: an hour before Expires
}

// JSON renders the file.
func (c ChatGPT) JSON() []byte {
	if c.RefreshToken == "" {
		c.RefreshToken = "rt_checktest"
	}
	if c.AccountID == "" {
		c.AccountID = "acct-checktest"
	}
	if c.LastRefresh.IsZero() {
		c.LastRefresh = c.Expires.Add(-time.Hour)
	}
	issued := c.LastRefresh.Unix()
	auth := map[string]any{
		"chatgpt_account_id": c.AccountID,
		"chatgpt_plan_type":  "pro",
		"chatgpt_user_id":    "user-checktest",
	}
	id := JWT(map[string]any{
		"iss": "https://auth.openai.com", "aud": []string{"app_checktest"}, "sub": "checktest",
		"email": "checktest@example.invalid", "iat": issued, "exp": issued + 3600,
		"https://api.openai.com/auth": auth,
	})
	access := JWT(map[string]any{
		"iss": "https://auth.openai.com", "aud": []string{"https://api.openai.com/v1"}, "sub": "checktest",
		"iat": issued, "exp": c.Expires.Unix(), "scp": []string{"openid", "profile", "email", "offline_access"},
		"https://api.openai.com/auth": auth,
	})
	return mustJSON(map[string]any{
		"OPENAI_API_KEY": nil,
		"tokens": map[string]any{
			"id_token": id, "access_token": access, "refresh_token": c.RefreshToken, "account_id": c.AccountID,
		},
		"last_refresh": c.LastRefresh.UTC().Format(time.RFC3339),
	})
}

// ValidChatGPT is a ChatGPT auth.json whose access token expires in 30 days.
func ValidChatGPT() []byte { return ChatGPT{Expires: time.Now().Add(30 * 24 * time.Hour)}.JSON() }

// ExpiredChatGPT is a ChatGPT auth.json whose access token expired a day ago.
func ExpiredChatGPT() []byte { return ChatGPT{Expires: time.Now().Add(-24 * time.Hour)}.JSON() }

// APIKey is an API-key auth.json (no tokens, so no expiry). An empty key
// gives a plausible default.
func APIKey(key string) []byte {
	if key == "" {
		key = "sk-proj-checktest0000000000000000"
	}
	return mustJSON(map[string]any{"OPENAI_API_KEY": key})
}

func mustJSON(v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic(err)
	}
	return append(b, '\n')
}

// HangingCommand writes a stand-in for codex that never answers: a shell script
// whose child sleeps for ten minutes. It returns the script's path.
func HangingCommand(t testing.TB) string {
	t.Helper()
	return script(t, "hanging-codex", "#!/bin/sh\nsleep 600\n")
}

// RecordingCommand writes a stand-in for codex that records its arguments,
// environment, the files of $CODEX_HOME (names only) and the octal modes of
// $CODEX_HOME and its auth.json into record, one per line, then prints "Logged in using ChatGPT" and exits 0. It returns the
// script's path and the record file's path.
func RecordingCommand(t testing.TB) (cmd, record string) {
	t.Helper()
	dir := t.TempDir()
	record = filepath.Join(dir, "record.txt")
	body := strings.Join([]string{
		"#!/bin/sh",
		"rec=" + shellQuote(record),
		`for a in "$0" "$@"; do printf 'arg %s\n' "$a" >>"$rec"; done`,
		`env | sed 's/^/env /' >>"$rec"`,
		`ls -A "$CODEX_HOME" | sed 's/^/file /' >>"$rec"`,
		`stat -c 'mode %n %a' "$CODEX_HOME" "$CODEX_HOME/auth.json" >>"$rec"`,
		`echo "Logged in using ChatGPT" >&2`,
		"",
	}, "\n")
	return script(t, "recording-codex", body), record
}

func script(t testing.TB, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
