// Package config loads egoagent's configuration: which secrets to fetch,
// where to put them, how to check them and how often to refresh them.
//
// Decoding is strict. An unknown key, a bad reference, mode, path, policy or
// schedule is an error that names the file, the line and the fix, because a
// typo in this file otherwise shows up weeks later as a secret that silently
// never arrived. Everything else in egoagent takes a validated *Config and
// never reads the file or the environment for settings itself.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/veraticus/egoengine/internal/health/check"
	"github.com/veraticus/egoengine/internal/secrets/source"
)

// Source kinds.
const (
	SourceOnePassword = "1password"
	SourceDir         = "dir"
)

// Policy says what to do when the installed file differs from the source.
type Policy string

const (
	// PolicyReplace installs the source's copy whenever it differs.
	PolicyReplace Policy = "replace"
	// PolicyConsumerRewrites is for files that their consumer rewrites
	// (Codex refreshes auth.json itself, and its refresh tokens are
	// single-use). Where the check can date the file (check.Dated), the
	// newer copy wins, in either direction; otherwise a file changed since
	// egoagent wrote it that still passes its check is kept, and a missing
	// or broken one is replaced.
	PolicyConsumerRewrites Policy = "consumer-rewrites"
)

// Config is a validated configuration.
type Config struct {
	File     string // where it was loaded from
	Source   Source
	Schedule Schedule
	Check    Check
	Secrets  []Secret
	Mirrors  []Mirror
}

// Source says where secrets come from.
type Source struct {
	Kind string // SourceOnePassword or SourceDir
	Dir  string // absolute folder for SourceDir
}

// Schedule says when the daemon refreshes.
type Schedule struct {
	Refresh       string        // cron spec (five fields or a descriptor such as "@every 6h")
	Jitter        time.Duration // random delay added to each scheduled pass
	StartDeadline time.Duration // how long `egoagent start` waits for its first pass
}

// Check holds settings shared by all checks.
type Check struct {
	CodexCommand string        // the Codex CLI, looked up on PATH if not absolute
	Timeout      time.Duration // per check
}

// Secret is one file egoagent keeps in place.
type Secret struct {
	Name     string
	Ref      source.Ref
	Path     string      // absolute, inside the home
	Mode     os.FileMode // permission bits only
	Check    check.Kind
	Policy   Policy
	Schedule string // cron spec overriding Schedule.Refresh; "" for none
	// WriteBack uploads the installed file to Ref when it is newer than
	// the source's copy (its program refreshed it), so that other
	// workspaces get it. Only for dated files under consumer-rewrites.
	WriteBack bool
	// Renew has egoagent renew the login itself ahead of its program, once
	// for all workspaces, agreeing through a lease in the source which one
	// renews (package renew). Only with WriteBack, which takes the new
	// login to the others.
	Renew bool
	Line  int // line of its [[secret]] header, for messages
}

// Mirror copies every Document item of a vault whose title starts with
// Prefix to the same path under the home, like the owner's `ee sync`.
type Mirror struct {
	Vault  string
	Prefix string
	Mode   os.FileMode
	Line   int
}

// Defaults, chosen so that a config with only [[secret]] tables works.
// Those of [check] are the checker's own, check.DefaultCodexCommand and
// check.DefaultTimeout, declared there alone. docs/configuration.md states
// them all; TestDocumentedDefaults holds the two to the same values.
const (
	DefaultRefresh       = "@every 6h"
	DefaultJitter        = 10 * time.Minute
	DefaultStartDeadline = 60 * time.Second
	DefaultMode          = os.FileMode(0o600)
	DefaultMirrorPrefix  = "home/"
)

// Env is what Load needs from the process environment, so that tests can
// give their own.
type Env struct {
	Home string // the user's home; secret paths must stay inside it
	// StateDir is egoagent's state folder (~/.local/state/egoagent). A
	// secret written there would overwrite egoagent's own records or
	// lock, so secret paths must stay out of it; "" skips the check.
	StateDir string
}

// Error is a configuration error at a place in a file.
type Error struct {
	File string
	Line int // 0 when the error is about the whole file
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return e.File + ": " + e.Msg
}

// Path returns the configuration file to use when none was named
// ($EGOAGENT_CONFIG and --config are read by the command line):
// ~/.config/egoagent/config.toml if it exists, else
// /etc/egoagent/config.toml (the image's default). home is absolute: the
// command line refuses to start without one.
func Path(home string) string {
	p := filepath.Join(home, ".config", "egoagent", "config.toml")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return "/etc/egoagent/config.toml"
}

// Load reads and validates the configuration file at path.
func Load(path string, env Env) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, env)
}

// readFile reads the configuration file at path, with an error that says
// what to do.
func readFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &Error{File: path, Msg: "no configuration file here; create it (see docs/configuration.md) or point EGOAGENT_CONFIG at one"}
		}
		if fi, serr := os.Stat(path); serr == nil && fi.IsDir() {
			return nil, &Error{File: path, Msg: fmt.Sprintf("is a folder, but the configuration is a file; point --config or EGOAGENT_CONFIG at the file, for example %s", filepath.Join(path, "config.toml"))}
		}
		if errors.Is(err, os.ErrPermission) {
			return nil, &Error{File: path, Msg: fmt.Sprintf("cannot read it: permission denied for %s; make it readable by this user, for example with chmod a+r %s (the configuration holds no secrets)", whoami(), path)}
		}
		return nil, &Error{File: path, Msg: fmt.Sprintf("cannot read: %v", errors.Unwrap(err))}
	}
	return data, nil
}

// file mirrors the TOML layout. Every field's zero value means "not given",
// so that Parse can fill in the defaults.
type file struct {
	Source struct {
		Kind string `toml:"kind"`
		Dir  string `toml:"dir"`
	} `toml:"source"`
	Schedule struct {
		Refresh       string `toml:"refresh"`
		Jitter        string `toml:"jitter"`
		StartDeadline string `toml:"start_deadline"`
	} `toml:"schedule"`
	Check struct {
		CodexCommand string `toml:"codex_command"`
		Timeout      string `toml:"timeout"`
	} `toml:"check"`
	Secret []struct {
		Name      string `toml:"name"`
		Ref       string `toml:"ref"`
		Path      string `toml:"path"`
		Mode      string `toml:"mode"`
		Check     string `toml:"check"`
		Policy    string `toml:"policy"`
		Schedule  string `toml:"schedule"`
		WriteBack bool   `toml:"write_back"`
		Renew     bool   `toml:"renew"`
	} `toml:"secret"`
	Mirror []struct {
		Vault  string `toml:"vault"`
		Prefix string `toml:"prefix"`
		Mode   string `toml:"mode"`
	} `toml:"mirror"`
}

// duration parses an optional duration setting such as "90s", "10m", "6h".
// instead is what to write when s is negative, such as
// `"10m", or "0s" for none`.
func duration(s string, def time.Duration, instead string) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration; write it like \"90s\", \"10m\" or \"6h\"", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q must not be negative; write %s", s, instead)
	}
	return d, nil
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// Parse validates data as the configuration file named by path.
func Parse(path string, data []byte, env Env) (*Config, error) {
	var f file
	lines := keyLines(data)
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, decodeError(path, data, lines, err)
	}
	errf := func(key string, format string, args ...any) error {
		return &Error{File: path, Line: lines.line(key), Msg: fmt.Sprintf(format, args...)}
	}
	if env.Home == "" || !filepath.IsAbs(env.Home) {
		return nil, &Error{File: path, Msg: "the home folder is unknown; set HOME to an absolute path"}
	}
	home := filepath.Clean(env.Home)
	stateDir := ""
	if env.StateDir != "" {
		if !filepath.IsAbs(env.StateDir) {
			return nil, &Error{File: path, Msg: fmt.Sprintf("the state folder %q is not an absolute path; set HOME to an absolute path", env.StateDir)}
		}
		stateDir = filepath.Clean(env.StateDir)
	}
	// The file itself, to refuse a secret that would overwrite it.
	self, _ := filepath.Abs(path)

	c := &Config{File: path}

	switch f.Source.Kind {
	case "", SourceOnePassword:
		c.Source.Kind = SourceOnePassword
		if f.Source.Dir != "" {
			return nil, errf("source.dir", "source.dir is only for kind = %q; remove it or set kind = %q", SourceDir, SourceDir)
		}
	case SourceDir:
		c.Source.Kind = SourceDir
		if f.Source.Dir == "" {
			return nil, errf("source.kind", "source kind %q needs dir = \"/path/to/folder\" (laid out as <vault>/<item>/<field>)", SourceDir)
		}
		dir, err := expandPath(f.Source.Dir, home)
		if err != nil {
			return nil, errf("source.dir", "source.dir: %v", err)
		}
		if !filepath.IsAbs(dir) {
			// Relative to the config file, so a demo folder can travel with its config.
			dir = filepath.Join(filepath.Dir(path), dir)
		}
		c.Source.Dir = dir
	default:
		return nil, errf("source.kind", "unknown source kind %q; use %q or %q", f.Source.Kind, SourceOnePassword, SourceDir)
	}

	// The floor guards 1Password's request budget; a folder has none.
	floor := MinRefreshInterval
	if c.Source.Kind == SourceDir {
		floor = 0
	}

	var err error
	c.Schedule.Refresh = f.Schedule.Refresh
	if c.Schedule.Refresh == "" {
		c.Schedule.Refresh = DefaultRefresh
	}
	if err := validSchedule(c.Schedule.Refresh, floor); err != nil {
		return nil, errf("schedule.refresh", "schedule.refresh: %v", err)
	}
	if c.Schedule.Jitter, err = duration(f.Schedule.Jitter, DefaultJitter, `"10m", or "0s" for none`); err != nil {
		return nil, errf("schedule.jitter", "schedule.jitter: %v", err)
	}
	if c.Schedule.StartDeadline, err = duration(f.Schedule.StartDeadline, DefaultStartDeadline, `a time more than zero, such as "60s"`); err != nil {
		return nil, errf("schedule.start_deadline", "schedule.start_deadline: %v", err)
	}
	if c.Schedule.StartDeadline == 0 {
		return nil, errf("schedule.start_deadline", "schedule.start_deadline must be more than zero, for example \"60s\"")
	}

	c.Check.CodexCommand = f.Check.CodexCommand
	if c.Check.CodexCommand == "" {
		c.Check.CodexCommand = check.DefaultCodexCommand
	}
	if c.Check.Timeout, err = duration(f.Check.Timeout, check.DefaultTimeout, `a time more than zero, such as "20s"`); err != nil {
		return nil, errf("check.timeout", "check.timeout: %v", err)
	}
	if c.Check.Timeout == 0 {
		return nil, errf("check.timeout", "check.timeout must be more than zero, for example \"20s\"")
	}

	names := map[string]int{}
	paths := map[string]string{}
	for i, s := range f.Secret {
		key := func(k string) string { return fmt.Sprintf("secret.%d.%s", i, k) }
		at := fmt.Sprintf("secret.%d", i)
		label := fmt.Sprintf("[[secret]] #%d", i+1)
		if s.Name == "" {
			return nil, errf(at, "%s has no name; add name = \"...\" (lower case letters, digits, '.', '_', '-')", label)
		}
		if !nameRE.MatchString(s.Name) {
			return nil, errf(key("name"), "secret name %q: use lower case letters, digits, '.', '_' and '-', starting with a letter or digit", s.Name)
		}
		label = fmt.Sprintf("secret %q", s.Name)
		if prev, dup := names[s.Name]; dup {
			return nil, errf(key("name"), "%s is defined twice (first at line %d); names must be unique", label, prev)
		}
		names[s.Name] = lines.line(at)

		if s.Ref == "" {
			return nil, errf(at, "%s has no ref; add ref = \"op://vault/item/field\"", label)
		}
		ref, err := source.ParseRef(s.Ref)
		if err != nil {
			return nil, errf(key("ref"), "%s: %v", label, err)
		}

		if s.Path == "" {
			return nil, errf(at, "%s has no path; add path = \"~/...\" (where the file goes)", label)
		}
		dest, err := secretPath(s.Path, home)
		if err != nil {
			return nil, errf(key("path"), "%s: path %v", label, err)
		}
		if stateDir != "" && Within(stateDir, dest) {
			what := "is inside"
			if dest == stateDir {
				what = "is"
			}
			return nil, errf(key("path"), "%s: path %q %s egoagent's own state folder %s, where it keeps its records and its lock; choose a path outside it", label, s.Path, what, tilde(stateDir, home))
		}
		if dest == self {
			return nil, errf(key("path"), "%s: path %q is this configuration file, which the secret would overwrite; choose another path", label, s.Path)
		}
		if other, dup := paths[dest]; dup {
			return nil, errf(key("path"), "%s writes %s, as secret %q already does; each file needs one owner", label, dest, other)
		}
		paths[dest] = s.Name

		mode, err := parseMode(s.Mode)
		if err != nil {
			return nil, errf(key("mode"), "%s: %v", label, err)
		}
		// ParseKind owns the default: no check is check.KindNone.
		kind, err := check.ParseKind(s.Check)
		if err != nil {
			return nil, errf(key("check"), "%s: %v", label, err)
		}
		policy := PolicyReplace
		switch Policy(s.Policy) {
		case "", PolicyReplace:
		case PolicyConsumerRewrites:
			policy = PolicyConsumerRewrites
		default:
			return nil, errf(key("policy"), "%s: unknown policy %q; use %q (default) or %q (for files their program rewrites, such as Codex's auth.json)", label, s.Policy, PolicyReplace, PolicyConsumerRewrites)
		}
		if s.WriteBack && (policy != PolicyConsumerRewrites || !check.Dated(kind)) {
			return nil, errf(key("write_back"), "%s: write_back needs policy = %q and check = %q: egoagent uploads a file only when it can tell that the file is newer than 1Password's copy, and only Codex's auth.json carries the dates to tell", label, PolicyConsumerRewrites, check.KindCodex)
		}
		if s.Renew && !s.WriteBack {
			return nil, errf(key("renew"), "%s: renew needs write_back = true: a login egoagent renews reaches the other workspaces through 1Password", label)
		}
		if s.Renew && c.Source.Kind != SourceOnePassword {
			return nil, errf(key("renew"), "%s: renew needs source.kind = %q: the workspaces agree on who renews through a lease kept in 1Password", label, SourceOnePassword)
		}
		if s.Schedule != "" {
			if err := validSchedule(s.Schedule, floor); err != nil {
				return nil, errf(key("schedule"), "%s: schedule: %v", label, err)
			}
		}
		c.Secrets = append(c.Secrets, Secret{
			Name: s.Name, Ref: ref, Path: dest, Mode: mode, Check: kind,
			Policy: policy, Schedule: s.Schedule, WriteBack: s.WriteBack, Renew: s.Renew, Line: lines.line(at),
		})
	}

	type mirrorAt struct {
		prefix string
		line   int
	}
	mirrors := map[string][]mirrorAt{} // by vault
	for i, m := range f.Mirror {
		key := func(k string) string { return fmt.Sprintf("mirror.%d.%s", i, k) }
		at := fmt.Sprintf("mirror.%d", i)
		if m.Vault == "" {
			return nil, errf(at, "[[mirror]] #%d has no vault; add vault = \"egoengine\"", i+1)
		}
		if strings.Contains(m.Vault, "/") {
			return nil, errf(key("vault"), "mirror vault %q: a vault name cannot contain '/'", m.Vault)
		}
		prefix := m.Prefix
		if prefix == "" {
			prefix = DefaultMirrorPrefix
		}
		if !strings.HasSuffix(prefix, "/") {
			return nil, errf(key("prefix"), "mirror prefix %q must end with '/', for example \"home/\"", prefix)
		}
		// Two mirrors of one vault whose prefixes nest would each install
		// the same Document, at two paths, under one name.
		for _, o := range mirrors[m.Vault] {
			if o.prefix == prefix {
				return nil, errf(key("prefix"), "this [[mirror]] of vault %q repeats the one at line %d (both with prefix %q); remove one of them", m.Vault, o.line, prefix)
			}
			short, long := o.prefix, prefix
			if len(short) > len(long) {
				short, long = long, short
			}
			if strings.HasPrefix(long, short) {
				return nil, errf(key("prefix"), "this [[mirror]] of vault %q, prefix %q, overlaps the one at line %d, prefix %q: a Document titled %q would land at both ~/%s and ~/%s; remove one, or use prefixes where neither starts with the other",
					m.Vault, prefix, o.line, o.prefix, long+"config", strings.TrimPrefix(long, short)+"config", "config")
			}
		}
		mirrors[m.Vault] = append(mirrors[m.Vault], mirrorAt{prefix, lines.line(at)})
		mode, err := parseMode(m.Mode)
		if err != nil {
			return nil, errf(key("mode"), "mirror of vault %q: %v", m.Vault, err)
		}
		c.Mirrors = append(c.Mirrors, Mirror{Vault: m.Vault, Prefix: prefix, Mode: mode, Line: lines.line(at)})
	}

	if len(c.Secrets) == 0 && len(c.Mirrors) == 0 {
		// Line 1 either way: there is no table to point at, and the top
		// is where one is looked for.
		what := "nothing to do"
		if len(bytes.TrimSpace(data)) == 0 {
			what = "the file is empty"
		}
		return nil, &Error{File: path, Line: 1, Msg: what + `: add at least one [[secret]] or [[mirror]] table, such as a line [[secret]] followed by name = "codex", ref = "op://egoengine/Codex Auth/auth.json" and path = "~/.codex/auth.json", each on a line of its own (see docs/configuration.md)`}
	}
	return c, nil
}

// parseMode accepts an octal string such as "0600". A secret file must be
// readable by its owner and by nobody else.
func parseMode(s string) (os.FileMode, error) {
	if s == "" {
		return DefaultMode, nil
	}
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || len(s) < 3 || len(s) > 4 {
		return 0, fmt.Errorf("mode %q is not an octal permission such as \"0600\"", s)
	}
	m := os.FileMode(v)
	if m&^0o700 != 0 {
		return 0, fmt.Errorf("mode %q gives access to group or others; secret files must be owner-only, such as \"0600\" or \"0400\"", s)
	}
	if m&0o400 == 0 {
		return 0, fmt.Errorf("mode %q does not let the owner read the file; use \"0600\" or \"0400\"", s)
	}
	return m, nil
}

// expandPath expands a leading "~/" or "$HOME/".
func expandPath(p, home string) (string, error) {
	switch {
	case p == "~" || p == "$HOME":
		return home, nil
	case strings.HasPrefix(p, "~/"):
		return filepath.Join(home, p[2:]), nil
	case strings.HasPrefix(p, "$HOME/"):
		return filepath.Join(home, p[len("$HOME/"):]), nil
	case strings.HasPrefix(p, "~"):
		return "", fmt.Errorf("%q: only ~/ (your own home) is understood", p)
	}
	return p, nil
}

// secretPath resolves a destination and keeps it inside the home. Symlinks
// are not resolved here: the writer refuses them when it writes, because
// they can change between now and then.
func secretPath(p, home string) (string, error) {
	x, err := expandPath(p, home)
	if err != nil {
		return "", err
	}
	if !filepath.IsAbs(x) {
		return "", fmt.Errorf("%q is relative; write it as \"~/%s\" or as an absolute path inside %s", p, p, home)
	}
	x = filepath.Clean(x)
	rel, err := filepath.Rel(home, x)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("%q is outside the home %s; secret files must live inside it", p, home)
	}
	return x, nil
}

// Within reports whether p is dir or inside it; both are clean and
// absolute. The config loader and the engine's last check before a write
// use it alike, so that both refuse the same paths.
func Within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// tilde writes p as ~/... when it is inside home, as the user would.
func tilde(p, home string) string {
	if rel, err := filepath.Rel(home, p); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
		if rel == "." {
			return "~"
		}
		return "~/" + rel
	}
	return p
}

// whoami names the user this process runs as, for a permission message.
func whoami() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return fmt.Sprintf("user %s (uid %d)", u.Username, os.Getuid())
	}
	return fmt.Sprintf("uid %d", os.Getuid())
}

// InHome maps a mirrored Document title (with the prefix removed) to a path
// inside home, refusing titles that would leave it.
func InHome(home, rel string) (string, error) {
	if rel == "" || strings.HasPrefix(rel, "/") {
		return "", fmt.Errorf("title path %q must be relative to the home", rel)
	}
	for _, part := range strings.Split(rel, "/") {
		if part == ".." {
			return "", fmt.Errorf("title path %q contains '..', which would leave the home", rel)
		}
		if part == "" || part == "." {
			return "", fmt.Errorf("title path %q has an empty or '.' segment", rel)
		}
	}
	return secretPath(filepath.Join(home, rel), home)
}
