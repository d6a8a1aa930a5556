// Package status keeps egoagent's record of each secret (the state file) and
// renders it for people: `egoagent status` as a table or JSON, and
// `egoagent metadata` as the one short line Coder shows.
//
// The state file holds times, outcomes and safe summaries, never a secret:
// to tell whether an installed file is the one egoagent wrote, it keeps a
// keyed fingerprint (HMAC-SHA256 under a random per-home key), so that the
// state file cannot be used to confirm a guess of a short secret (see
// statedir.Fingerprinter).
//
// Rendering reads only the state folder. It must stay cheap: Coder runs the
// metadata command every few seconds in every workspace.
package status

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/veraticus/egoengine/internal/health/statedir"
	"github.com/veraticus/egoengine/internal/secrets/secretfile"
	"github.com/veraticus/egoengine/internal/secrets/source"
)

// SecretState is where a secret stands after its last pass. The strings
// are what state.json holds, so they never change.
type SecretState string

// Secret states.
const (
	Fresh   SecretState = "fresh"   // the installed file matches the source's current copy and passed its check
	Kept    SecretState = "kept"    // consumer-rewrites: the consumer's newer file passes its check and was kept
	Stale   SecretState = "stale"   // the last attempt failed; the file in place is an older copy
	Missing SecretState = "missing" // the last attempt failed and there is no file in place
	Pending SecretState = "pending" // configured but never attempted
	// Settling: the installed file fails its check but changed moments ago,
	// so its program may still be writing it; it is judged (kept or
	// replaced) once it has been left alone. Not fresh: the file in place
	// may be unusable.
	Settling SecretState = "settling"
	// Modified is never stored: LookAtFiles shows it for a fresh or kept
	// secret whose file changed after the pass that judged it, since
	// nothing has judged the new content yet.
	Modified SecretState = "modified"
	Refused  SecretState = "refused" // the source's item cannot be installed as it stands (a Document title that collides or escapes)
)

// OK reports whether a secret in state s is usable and up to date.
func OK(s SecretState) bool { return s == Fresh || s == Kept }

// State is the content of the state file.
type State struct {
	Version   int       `json:"version"`
	Home      string    `json:"home,omitempty"` // the home this state folder belongs to (HomeID)
	UpdatedAt time.Time `json:"updated_at"`
	LastPass  *Pass     `json:"last_pass,omitempty"`
	Daemon    *Daemon   `json:"daemon,omitempty"`
	Secrets   []Secret  `json:"secrets"`
}

// Trigger says what started a pass, or why the daemon plans the next one
// when it does.
type Trigger string

// Triggers.
const (
	TriggerSync         Trigger = "sync"          // egoagent sync
	TriggerStart        Trigger = "start"         // egoagent start's first pass
	TriggerRefresh      Trigger = "refresh"       // egoagent refresh
	TriggerSchedule     Trigger = "schedule"      // the cron schedule
	TriggerWatch        Trigger = "watch"         // a watched file changed
	TriggerRetry        Trigger = "retry"         // backoff after a failure, or the end of a rate-limit hold
	TriggerNearRenewal  Trigger = "near renewal"  // a dated file is near its renewal point
	TriggerConfigChange Trigger = "config change" // the config file changed
	TriggerDaemonStart  Trigger = "daemon start"  // a daemon started without start's pass
)

// Pass describes one ingestion pass.
type Pass struct {
	Trigger  Trigger   `json:"trigger"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Calls    int       `json:"calls"` // requests made to the source (1Password rate limits count these)
	OK       bool      `json:"ok"`
}

// Daemon is what the daemon reports about itself. The daemon writes it to a
// file of its own (daemon.json), so that it never waits on a pass for the
// state file's lock; Load merges it in.
type Daemon struct {
	PID         int                  `json:"pid"`
	Home        string               `json:"home,omitempty"` // the home it serves (HomeID)
	Started     time.Time            `json:"started"`
	Running     bool                 `json:"running"` // filled in by Load: is that daemon alive now?
	ConfigFile  string               `json:"config_file"`
	ConfigError string               `json:"config_error,omitempty"` // a broken new config; the daemon keeps the old one
	HoldUntil   time.Time            `json:"hold_until,omitzero"`    // no automatic pass before this (rate limited)
	Next        map[string]time.Time `json:"next,omitempty"`         // next refresh per secret
	Why         map[string]Trigger   `json:"why,omitempty"`          // why then
	Passes      int                  `json:"passes"`                 // passes run since the daemon started
}

// Secret is what egoagent knows about one secret file.
type Secret struct {
	Name        string       `json:"name"`
	Path        string       `json:"path"`
	Ref         string       `json:"ref"`
	Policy      string       `json:"policy"`
	State       SecretState  `json:"state"`
	Note        string       `json:"note,omitempty"`        // what the last pass did, in words
	Attempted   time.Time    `json:"attempted,omitzero"`    // last attempt to fetch
	Fetched     time.Time    `json:"fetched,omitzero"`      // last successful fetch
	Changed     time.Time    `json:"changed,omitzero"`      // last time egoagent changed the file
	Checked     time.Time    `json:"checked,omitzero"`      // last check that passed
	Check       string       `json:"check,omitempty"`       // the check's safe summary
	Expires     time.Time    `json:"expires,omitzero"`      // credential expiry, when the file carries one
	Error       string       `json:"error,omitempty"`       // why the last attempt failed
	ErrorClass  source.Class `json:"error_class,omitempty"` // why the last attempt failed, as a class
	StaleSince  time.Time    `json:"stale_since,omitzero"`  // first failure of the current run of failures
	NextRefresh time.Time    `json:"next_refresh,omitzero"` // set by the daemon
	NextWhy     Trigger      `json:"next_why,omitempty"`    // and why then
	Written     string       `json:"written,omitempty"`     // fingerprint of what egoagent last wrote
	Version     string       `json:"version,omitempty"`     // the source's item, at the version Written came from ("" when unknown)
	Verified    string       `json:"verified,omitempty"`    // check kind and fingerprint of the source's copy that last passed its check
	File        *FileStamp   `json:"file,omitempty"`        // the installed file as the last pass left it
	Failures    int          `json:"failures,omitempty"`    // consecutive failed attempts

	// For files that carry their own dates (Codex's auth.json): the
	// installed copy's dates, which copy was newer at the last pass, and
	// the last write-back.
	Newer       string        `json:"newer,omitempty"`       // NewerLocal, NewerSource or NewerNeither
	LastRefresh time.Time     `json:"last_refresh,omitzero"` // the installed copy's last renewal
	RefreshAt   time.Time     `json:"refresh_at,omitzero"`   // when its program renews it on next use
	TokenLife   time.Duration `json:"token_life,omitempty"`  // how long its access token was issued for
	WriteBack   *WriteBack    `json:"write_back,omitempty"`  // the last upload attempt
	Renewal     *Renewal      `json:"renewal,omitempty"`     // the last time egoagent came to renew it (renew = true)
}

// FileStamp is what an installed file looked like when a pass judged it:
// enough to tell, with one stat, that it has changed since.
type FileStamp struct {
	ModTime time.Time `json:"mtime"`
	Size    int64     `json:"size"`
}

// StampOf returns the stamp of the file at path, or nil when there is no
// file there.
func StampOf(path string) *FileStamp {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil
	}
	return &FileStamp{ModTime: fi.ModTime(), Size: fi.Size()}
}

// LookAtFiles takes back what the state claims of a fresh or kept secret
// whose file changed after the pass that judged it: modified, or missing
// when it is gone. It is for what status and metadata show and how status
// exits; it costs one stat per secret, and no pass saves what it marks.
func (s *State) LookAtFiles() {
	for i := range s.Secrets {
		sec := &s.Secrets[i]
		if !OK(sec.State) || sec.File == nil || sec.Path == "" {
			continue
		}
		switch now := StampOf(sec.Path); {
		case now == nil:
			sec.State, sec.Note = Missing, "the file was deleted after the last pass; the next pass installs it again"
		case !now.ModTime.Equal(sec.File.ModTime) || now.Size != sec.File.Size:
			sec.State, sec.Note = Modified, "the file changed after the last pass judged it, and nothing has checked it since"
		}
	}
}

// Which copy of a dated file was newer at the last pass.
const (
	NewerLocal   = "local"     // the installed file: its program renewed it
	NewerSource  = "1password" // the source's copy: another workspace or a new login
	NewerNeither = "same"      // the same renewal on both sides
)

// WriteBack is the outcome of the last upload of a secret's installed file
// to its source.
type WriteBack struct {
	At    time.Time    `json:"at"`
	OK    bool         `json:"ok"`
	Note  string       `json:"note,omitempty"`  // what happened, in words
	Class source.Class `json:"class,omitempty"` // when it failed
}

// Renewal is how egoagent's last attempt to renew a login ahead of its
// program went: renewed here, left to another workspace that holds the
// lease, or failed. Failed is set only when this workspace's attempt went
// wrong (not when another workspace renews).
type Renewal struct {
	At     time.Time    `json:"at"`
	Note   string       `json:"note"`
	Failed bool         `json:"failed,omitempty"`
	Class  source.Class `json:"class,omitempty"`
}

// Find returns the secret named name, or nil.
func (s *State) Find(name string) *Secret {
	for i := range s.Secrets {
		if s.Secrets[i].Name == name {
			return &s.Secrets[i]
		}
	}
	return nil
}

const stateVersion = 1

// Load reads the state file in dir, with the daemon's report merged in. A
// missing file is an empty state.
func Load(dir string) (*State, error) {
	var s State
	if err := readJSON(filepath.Join(dir, statedir.StateFile), &s); err != nil {
		return nil, err
	}
	var d Daemon
	// The daemon rewrites its report whenever anything changes: a damaged
	// one is as good as none, and must not stop status from showing the rest.
	if err := readJSON(filepath.Join(dir, statedir.DaemonFile), &d); err != nil {
		d = Daemon{}
	}
	if d.PID != 0 {
		d.Running = statedir.DaemonAlive(dir)
		s.Daemon = &d
		if d.Running {
			for i := range s.Secrets {
				s.Secrets[i].NextRefresh = d.Next[s.Secrets[i].Name]
				s.Secrets[i].NextWhy = d.Why[s.Secrets[i].Name]
			}
		}
	}
	return &s, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", path, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return &DamagedError{Path: path, Err: err}
	}
	return nil
}

// DamagedError means a file in the state folder holds something that is
// not its JSON (a full disk, a hand edit). The next pass moves it aside
// with MoveAside and starts from an empty state.
type DamagedError struct {
	Path string
	Err  error
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("%s is damaged (%v); the next pass (egoagent sync or refresh) moves it aside and starts afresh", e.Path, e.Err)
}

func (e *DamagedError) Unwrap() error { return e.Err }

// MoveAside renames a damaged state file to <name>.damaged, replacing an
// older such copy, so that a person can still look at it, and returns the
// new path.
func MoveAside(e *DamagedError) (string, error) {
	to := e.Path + ".damaged"
	if err := os.Rename(e.Path, to); err != nil {
		return "", fmt.Errorf("%s is damaged and cannot be moved aside: %w", e.Path, err)
	}
	return to, nil
}

// Save writes the state file atomically. The daemon's report is not part of
// it.
func Save(dir string, s *State) error {
	c := *s
	c.Version, c.Daemon = stateVersion, nil
	c.Secrets = slices.Clone(s.Secrets)
	for i := range c.Secrets {
		c.Secrets[i].NextRefresh, c.Secrets[i].NextWhy = time.Time{}, ""
	}
	return writeJSON(filepath.Join(dir, statedir.StateFile), &c)
}

// SaveDaemon writes the daemon's report atomically.
func SaveDaemon(dir string, d *Daemon) error {
	return writeJSON(filepath.Join(dir, statedir.DaemonFile), d)
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := secretfile.Replace(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("cannot save %s: %w", path, err)
	}
	return nil
}

// HomeID names a home for the ownership checks: its real path, so that a
// home reached through a link is still the same home.
func HomeID(home string) string {
	if p, err := filepath.EvalSymlinks(home); err == nil {
		return p
	}
	return filepath.Clean(home)
}

// ForeignError means a state folder, or the daemon serving it, belongs to
// another home than the one asking: the folder is shared (a symbolic link,
// a bind mount, two HOMEs over one disk). Answering from it would report
// the other home's secrets as this one's.
type ForeignError struct {
	Dir   string // the state folder, as this home names it
	Owner string // the home it belongs to
	Home  string // the home that asked
	PID   int    // the daemon's, when a daemon answered
}

func (e *ForeignError) Error() string {
	who := "belongs to"
	if e.PID != 0 {
		who = fmt.Sprintf("is served by a daemon (pid %d) for", e.PID)
	}
	how := "shared with it"
	if target, err := os.Readlink(e.Dir); err == nil {
		how = "a symbolic link to " + target
	}
	return fmt.Sprintf("the state folder %s %s the home %s, not %s: it is %s; each home needs a state folder of its own (remove the link, or run egoagent with that home's HOME)", e.Dir, who, e.Owner, e.Home, how)
}

// CheckHome reports a *ForeignError when s was recorded for another home.
// A state without an owner (new, or older than this check) is anyone's.
func CheckHome(s *State, dir, home string) error {
	if id := HomeID(home); s.Home != "" && s.Home != id {
		return &ForeignError{Dir: dir, Owner: s.Home, Home: id}
	}
	return nil
}
