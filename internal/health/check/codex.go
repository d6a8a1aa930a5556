package check

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// maxCodexAuthSize bounds a candidate auth.json. Real ones are a few KiB; a
// larger candidate is not one and is refused before anything is staged.
const maxCodexAuthSize = 1 << 20

// maxCodexOutput caps what is kept of `codex login status` output. It is only
// matched against known phrases and then dropped.
const maxCodexOutput = 4 << 10

// codexAuth is what the static part of the codex check learns from a file.
type codexAuth struct {
	mode    string    // "ChatGPT tokens", "API key", or a fixed phrase for a mode codex may know and we do not
	expires time.Time // zero for API-key files
	expSrc  string    // which token expires: "access token" or "ID token"
}

// parseCodexAuth reads content as Codex's auth.json:
//
//	{"auth_mode"?: string, "OPENAI_API_KEY"?: string|null,
//	 "tokens"?: {"id_token", "access_token", "refresh_token": string, "account_id"?: string|null} | null,
//	 "last_refresh"?: RFC 3339 string | null}
//
// Unknown keys are allowed: Codex adds fields between releases and ignores
// ones it does not know. Codex itself accepts "{}" as "Logged in using
// ChatGPT" (seen with 0.169.0), so the rule that a file must hold a credential
// is ours. Error texts name keys, never values.
func parseCodexAuth(content []byte) (codexAuth, error) {
	if len(content) > maxCodexAuthSize {
		return codexAuth{}, fmt.Errorf("auth.json is %d bytes, more than the %d a Codex auth file can be", len(content), maxCodexAuthSize)
	}
	if msg := validJSON(content); msg != "" {
		return codexAuth{}, errors.New("auth.json: " + msg)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(content, &top); err != nil {
		return codexAuth{}, errors.New("auth.json must be a JSON object")
	}

	authMode, _, err := stringField(top, "auth_mode")
	if err != nil {
		return codexAuth{}, err
	}
	apiKey, hasKey, err := stringField(top, "OPENAI_API_KEY")
	if err != nil {
		return codexAuth{}, err
	}
	if lr, has, err := stringField(top, "last_refresh"); err != nil {
		return codexAuth{}, err
	} else if has {
		if _, perr := time.Parse(time.RFC3339Nano, lr); perr != nil {
			return codexAuth{}, errors.New(`auth.json: "last_refresh" is not an RFC 3339 time`)
		}
	}
	tokens, hasTokens, err := objectField(top, "tokens")
	if err != nil {
		return codexAuth{}, err
	}

	// Which credential governs, in Codex's order (0.169.0): an explicit
	// auth_mode; else an OPENAI_API_KEY that is not null; else tokens.
	switch {
	case authMode == "apikey" || (authMode == "" && hasKey):
		if apiKey == "" {
			return codexAuth{}, errors.New(`auth.json: "OPENAI_API_KEY" is empty; an API-key file needs the key`)
		}
		return codexAuth{mode: "API key"}, nil
	case authMode == "chatgpt" || (authMode == "" && hasTokens):
		if !hasTokens {
			return codexAuth{}, errors.New(`auth.json: "auth_mode" is "chatgpt" but there is no "tokens" object`)
		}
		a, err := parseCodexTokens(tokens)
		a.mode = "ChatGPT tokens"
		return a, err
	case authMode != "":
		// A mode this package does not know: leave the verdict to Codex,
		// but still read the expiry of any tokens present.
		a := codexAuth{}
		if hasTokens {
			if a, err = parseCodexTokens(tokens); err != nil {
				return codexAuth{}, err
			}
		} else if apiKey == "" {
			return codexAuth{}, errors.New(`auth.json holds no credentials: no "OPENAI_API_KEY" and no "tokens"`)
		}
		// The value itself stays out: it is content, and content may be secret.
		a.mode = "an auth_mode this check does not know"
		return a, nil
	default:
		return codexAuth{}, errors.New(`auth.json holds no credentials: no "OPENAI_API_KEY" and no "tokens"; log in with codex and store the new file`)
	}
}

// parseCodexTokens checks the ChatGPT token set and reads its expiry: the
// access token's exp, which is what Codex refreshes on, or the ID token's when
// the access token is empty.
func parseCodexTokens(tokens map[string]json.RawMessage) (codexAuth, error) {
	var vals [3]string
	for i, name := range []string{"id_token", "access_token", "refresh_token"} {
		v, has, err := stringField(tokens, name)
		if err != nil {
			return codexAuth{}, fmt.Errorf("auth.json: tokens.%s must be a string", name)
		}
		if !has {
			return codexAuth{}, fmt.Errorf("auth.json: tokens.%s is missing", name)
		}
		vals[i] = v
	}
	idToken, accessToken, refreshToken := vals[0], vals[1], vals[2]
	if _, _, err := stringField(tokens, "account_id"); err != nil {
		return codexAuth{}, errors.New("auth.json: tokens.account_id must be a string or null")
	}
	if refreshToken == "" {
		return codexAuth{}, errors.New("auth.json: tokens.refresh_token is empty; Codex could not renew this login")
	}
	// Codex reads claims from the ID token, so it must be a JWT even when the
	// expiry comes from the access token.
	if _, err := jwtPayload(idToken); err != nil {
		return codexAuth{}, fmt.Errorf("auth.json: tokens.id_token %v", err)
	}
	tok, name := accessToken, "access token"
	field := "tokens.access_token"
	if accessToken == "" {
		tok, name, field = idToken, "ID token", "tokens.id_token"
	}
	exp, err := jwtExpiry(tok)
	if err != nil {
		return codexAuth{}, fmt.Errorf("auth.json: %s %v", field, err)
	}
	return codexAuth{expires: exp, expSrc: name}, nil
}

// stringField reads key from obj as a string. An absent key or null gives
// has=false; any other type is an error naming the key.
func stringField(obj map[string]json.RawMessage, key string) (val string, has bool, err error) {
	raw, ok := obj[key]
	if !ok || string(raw) == "null" {
		return "", false, nil
	}
	if err := json.Unmarshal(raw, &val); err != nil {
		return "", false, fmt.Errorf("auth.json: %q must be a string or null", key)
	}
	return val, true, nil
}

// objectField reads key from obj as a JSON object, with stringField's rules.
func objectField(obj map[string]json.RawMessage, key string) (map[string]json.RawMessage, bool, error) {
	raw, ok := obj[key]
	if !ok || string(raw) == "null" {
		return nil, false, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, false, fmt.Errorf("auth.json: %q must be an object or null", key)
	}
	return m, true, nil
}

// fmtTime renders a time for summaries: UTC, to the minute.
func fmtTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04Z") }

func (a codexAuth) expiryPhrase(expired bool) string {
	switch {
	case a.expires.IsZero():
		return "no expiry"
	case expired:
		return a.expSrc + " expired " + fmtTime(a.expires) + " (Codex renews it on first use)"
	}
	return a.expSrc + " expires " + fmtTime(a.expires)
}

// checkCodex runs the static rules, then `codex login status` on a staged
// copy. ctx carries the check's deadline.
func (c *Checker) checkCodex(ctx context.Context, content []byte) Result {
	auth, err := parseCodexAuth(content)
	if err != nil {
		return Result{Summary: "codex: " + err.Error()}
	}
	res := Result{Expires: auth.expires}
	// An expired access token is no reason to refuse a file: Codex renews it
	// with the refresh token on first use. Whether a copy is worth more than
	// the one in place is a question of which is newer (see Compare), not of
	// expiry, and refusing here would strand a workspace whenever every copy
	// had sat unused for longer than a token lives.
	expired := !auth.expires.IsZero() && !c.opts.Now().Before(auth.expires)
	st := c.loginStatus(ctx, content)
	switch {
	case st.skipped != "":
		res.OK = true
		res.Skipped = st.skipped
		res.Summary = fmt.Sprintf("codex: %s, %s", auth.mode, auth.expiryPhrase(expired))
	case st.ok:
		res.OK = true
		res.Summary = fmt.Sprintf("codex: %s, %s", st.phrase, auth.expiryPhrase(expired))
	default:
		res.Summary = "codex: " + st.phrase
	}
	return res
}

// loginOutcome is the safe residue of one `codex login status` run.
type loginOutcome struct {
	ok      bool   // codex exited 0
	phrase  string // a fixed phrase for what codex said; never its output
	skipped string // set when codex could not be found: nothing ran
}

// loginStatus stages content in a fresh folder under StageDir and runs
// `codex login status` there. The staging folder is removed before it returns,
// whatever happened, after the child and anything it started are gone.
func (c *Checker) loginStatus(ctx context.Context, content []byte) loginOutcome {
	bin, err := exec.LookPath(c.opts.CodexCommand)
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			where := "on PATH"
			if strings.ContainsRune(c.opts.CodexCommand, filepath.Separator) {
				where = "at " + c.opts.CodexCommand
			}
			return loginOutcome{skipped: "codex CLI not found " + where + ": login status not checked"}
		}
		return loginOutcome{phrase: fmt.Sprintf("codex CLI %s cannot be run: %v", c.opts.CodexCommand, errors.Unwrap(err))}
	}
	// exec resolves a relative path against cmd.Dir, the staging folder.
	if abs, err := filepath.Abs(bin); err == nil {
		bin = abs
	}
	if ctx.Err() != nil {
		return loginOutcome{phrase: "check cancelled before codex ran"}
	}

	dir, err := c.stage(content)
	if dir != "" {
		defer os.RemoveAll(dir)
	}
	if err != nil {
		return loginOutcome{phrase: "could not stage the candidate: " + err.Error()}
	}

	out := &cappedBuffer{max: maxCodexOutput}
	defer out.wipe()
	// The secret travels only in the staged file: the arguments are fixed and
	// the environment is built from scratch, so nothing of ours (a 1Password
	// token, or CODEX_ACCESS_TOKEN, which codex would check instead of the
	// file) reaches the child. HOME points into the staging folder so that
	// nothing codex might write lands in the real home. cmd.Dir keeps codex
	// from reading project config from the caller's working directory.
	cmd := exec.CommandContext(ctx, bin, "login", "status")
	cmd.Dir = dir
	cmd.Env = []string{"CODEX_HOME=" + dir, "HOME=" + dir, "PATH=" + childPath()}
	cmd.Stdout, cmd.Stderr = out, out
	// A process group, killed whole on timeout: a wrapper script's children
	// would otherwise hold the output pipe (and the staged file) open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	runErr := cmd.Run()

	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return loginOutcome{phrase: "codex login status timed out"}
		}
		return loginOutcome{phrase: "check cancelled while codex ran"}
	}
	var exitErr *exec.ExitError
	if runErr != nil && !errors.As(runErr, &exitErr) {
		// Starting failed (exec format, permission): the error names the
		// binary, never the content.
		return loginOutcome{phrase: "codex could not be started: " + runErr.Error()}
	}
	return classifyLoginStatus(runErr == nil, cmd.ProcessState, out.b)
}

// childPath is the PATH given to codex: ours (it holds no secrets, and the npm
// launcher needs node from it), or a plain default.
func childPath() string {
	if p := os.Getenv("PATH"); p != "" {
		return p
	}
	return "/usr/local/bin:/usr/bin:/bin"
}

// classifyLoginStatus maps codex's exit and output to a fixed phrase. Output
// is matched, never copied: "API key configured - sk-proj-***XXXXX" carries
// the end of the key.
func classifyLoginStatus(ok bool, ps *os.ProcessState, out []byte) loginOutcome {
	has := func(s string) bool { return bytes.Contains(out, []byte(s)) }
	if ok {
		switch {
		case has("Logged in using ChatGPT"):
			return loginOutcome{ok: true, phrase: "logged in with ChatGPT"}
		case has("API key configured"):
			return loginOutcome{ok: true, phrase: "API key configured"}
		default:
			return loginOutcome{ok: true, phrase: "login status passed"}
		}
	}
	switch {
	case has("Not logged in"):
		return loginOutcome{phrase: "codex says not logged in"}
	case has("failed to deserialize CLI auth"):
		return loginOutcome{phrase: "codex cannot read this auth.json"}
	case has("API key auth is missing a key"):
		return loginOutcome{phrase: "codex says the API key is missing"}
	case has("Error loading configuration"):
		return loginOutcome{phrase: "codex could not load its configuration"}
	case has("Error checking login status"):
		return loginOutcome{phrase: "codex could not check the login"}
	}
	if ps != nil {
		if ws, wok := ps.Sys().(syscall.WaitStatus); wok && ws.Signaled() {
			return loginOutcome{phrase: fmt.Sprintf("codex login status killed by %v", ws.Signal())}
		}
		return loginOutcome{phrase: fmt.Sprintf("codex login status failed (exit status %d)", ps.ExitCode())}
	}
	return loginOutcome{phrase: "codex login status failed"}
}

// stage makes a fresh 0700 folder under StageDir holding the candidate as
// auth.json (0600) and a config.toml that makes codex read that file, not an
// OS keyring that might hold someone else's login.
func (c *Checker) stage(content []byte) (string, error) {
	if c.opts.StageDir == "" {
		return "", errors.New("no staging folder configured (Options.StageDir)")
	}
	root, err := filepath.Abs(c.opts.StageDir)
	if err != nil {
		return "", err
	}
	if err := ensurePrivateDir(root); err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp(root, "codex-") // 0700, unpredictable name
	if err != nil {
		return "", err
	}
	if err := writeNew(filepath.Join(dir, "auth.json"), content); err != nil {
		return dir, err
	}
	return dir, writeNew(filepath.Join(dir, "config.toml"), []byte("cli_auth_credentials_store = \"file\"\n"))
}

// ensurePrivateDir creates dir (0700) when missing and makes sure it is a real
// folder of ours that no one else can enter.
func ensurePrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("staging folder: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("staging folder: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("staging folder %s is not a directory (a symlink or a file); remove it", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return fmt.Errorf("staging folder %s belongs to uid %d, not to this user (uid %d); remove it or choose another", dir, st.Uid, os.Getuid())
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("staging folder %s is open to others and could not be made private: %w", dir, err)
		}
	}
	return nil
}

// writeNew writes a file that must not exist yet, mode 0600.
func writeNew(path string, content []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// cappedBuffer keeps the first max bytes written and discards the rest, while
// reporting every write as complete so that the child is never blocked or
// broken by a full pipe.
type cappedBuffer struct {
	b   []byte
	max int
}

func (w *cappedBuffer) Write(p []byte) (int, error) {
	if room := w.max - len(w.b); room > 0 {
		w.b = append(w.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// wipe clears what was kept, which may hold the tail of an API key.
func (w *cappedBuffer) wipe() { clear(w.b); w.b = nil }
