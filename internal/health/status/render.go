package status

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/veraticus/egoengine/internal/health/printable"
	"github.com/veraticus/egoengine/internal/secrets/source"
)

// MetadataMax is Coder's cap on one metadata value; the line is kept far
// below it, but never over it.
const MetadataMax = 2048

// Metadata renders the one line Coder's metadata UI shows: all is well, or
// the worst problem first. Names and classes in it are made printable, so
// the line stays one line and sends the terminal nothing but text.
func Metadata(s *State, now time.Time) string {
	line := metadataLine(s, now)
	if len(line) > MetadataMax {
		cut := MetadataMax - 3
		for cut > 0 && !utf8.RuneStart(line[cut]) {
			cut--
		}
		line = line[:cut] + "..."
	}
	return line
}

func metadataLine(s *State, now time.Time) string {
	if s == nil || (len(s.Secrets) == 0 && s.LastPass == nil) {
		return "not synced yet: run egoagent sync"
	}
	var bad []Secret
	for _, sec := range s.Secrets {
		if !OK(sec.State) {
			bad = append(bad, sec)
		}
	}
	var parts []string
	switch {
	case len(bad) == 1:
		parts = append(parts, problem(bad[0], now))
	case len(bad) > 1:
		parts = append(parts, fmt.Sprintf("%d of %d not fresh: %s", len(bad), len(s.Secrets), problem(bad[0], now)))
	default:
		parts = append(parts, fmt.Sprintf("ok: %d fresh", len(s.Secrets)))
		if s.LastPass != nil {
			parts[0] += ", synced " + Ago(now, s.LastPass.Finished)
		}
		for _, sec := range s.Secrets {
			if wb := sec.WriteBack; wb != nil && !wb.OK {
				parts = append(parts, fmt.Sprintf("%s write-back failing (%s)", printable.Name(sec.Name), printable.Name(string(wb.Class))))
				break
			}
		}
		for _, sec := range s.Secrets {
			if r := sec.Renewal; r != nil && r.Failed {
				parts = append(parts, fmt.Sprintf("%s renewal failing (%s)", printable.Name(sec.Name), printable.Name(string(r.Class))))
				break
			}
		}
		if e := soonest(s.Secrets); e != nil && e.Expires.Sub(now) < 72*time.Hour {
			if e.Expires.After(now) {
				parts = append(parts, fmt.Sprintf("%s expires in %s", printable.Name(e.Name), Round(e.Expires.Sub(now))))
			} else {
				parts = append(parts, fmt.Sprintf("%s expired %s ago", printable.Name(e.Name), Round(now.Sub(e.Expires))))
			}
		}
	}
	if d := s.Daemon; d != nil {
		if d.ConfigError != "" && d.Running {
			parts = append(parts, "config error (old config in use)")
		}
		if !d.Running {
			parts = append(parts, "daemon not running")
		}
	}
	return strings.Join(parts, "; ")
}

// noToken is the metadata line's word for a workspace without a 1Password
// token: the command that gives it one (the owner's Coder user secret,
// docs/operations.md), since the line is what the owner sees first.
const noToken = "no 1Password token: coder secret create op-token --env OP_SERVICE_ACCOUNT_TOKEN"

func problem(sec Secret, now time.Time) string {
	name, why := printable.Name(sec.Name), printable.Name(string(sec.ErrorClass))
	if why == "" {
		why = "error"
	}
	if sec.ErrorClass == source.ClassMissingToken {
		return noToken
	}
	switch sec.State {
	case Pending:
		return name + " pending"
	case Settling:
		return name + " settling (being written?)"
	case Missing:
		if sec.ErrorClass == "" {
			return name + " missing (deleted since the last pass)"
		}
		return fmt.Sprintf("%s missing (%s)", name, why)
	case Modified:
		return name + " modified since the last pass"
	case Refused:
		return name + " refused"
	}
	since := ""
	if !sec.StaleSince.IsZero() {
		since = " " + Round(now.Sub(sec.StaleSince))
	}
	return fmt.Sprintf("%s stale%s (%s)", name, since, why)
}

// soonest is the secret whose credential expires first. Files whose program
// renews them (RefreshAt is set) do not count: their expiry is routine.
func soonest(secs []Secret) *Secret {
	var best *Secret
	for i := range secs {
		if e := secs[i].Expires; !e.IsZero() && secs[i].RefreshAt.IsZero() && (best == nil || e.Before(best.Expires)) {
			best = &secs[i]
		}
	}
	return best
}

// JSON writes the state as indented JSON, without fingerprints (they are of
// no use to a reader and need not travel).
func JSON(w io.Writer, s *State) error {
	c := *s
	c.Secrets = make([]Secret, len(s.Secrets))
	for i, sec := range s.Secrets {
		sec.Written, sec.Verified = "", ""
		c.Secrets[i] = sec
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(&c)
}

// Human writes a table for a person in a terminal: a line per secret, with
// the reason underneath when something is wrong. Every string from outside
// (names come from 1Password titles, errors from anywhere) is made printable
// first: a newline in it would forge a line, an ESC would drive the terminal.
func Human(w io.Writer, s *State, now time.Time, home string) error {
	if len(s.Secrets) == 0 {
		_, err := fmt.Fprintln(w, "No secrets recorded yet: run `egoagent sync`.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SECRET\tSTATE\tPATH\tFETCHED\tCHANGED\tCHECKED\tEXPIRES\tNEXT")
	for _, sec := range s.Secrets {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			printable.Name(sec.Name), printable.Name(string(sec.State)), printable.Name(shortHome(sec.Path, home)),
			Ago(now, sec.Fetched), Ago(now, sec.Changed), Ago(now, sec.Checked),
			until(now, sec.Expires), next(now, sec))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, sec := range s.Secrets {
		var lines []string
		if sec.Note != "" {
			lines = append(lines, printable.Text(sec.Note))
		}
		if sec.Check != "" {
			lines = append(lines, "check: "+printable.Text(sec.Check))
		}
		lines = append(lines, chain(sec, now)...)
		if sec.Error != "" {
			e := "error"
			if sec.ErrorClass != "" {
				e += " (" + printable.Name(string(sec.ErrorClass)) + ")"
			}
			lines = append(lines, e+": "+printable.Text(sec.Error))
			if !sec.StaleSince.IsZero() {
				lines = append(lines, "failing since "+sec.StaleSince.Local().Format(time.DateTime)+" ("+Ago(now, sec.StaleSince)+")")
			}
			if sec.NextWhy == TriggerRetry && !sec.NextRefresh.IsZero() {
				lines = append(lines, "next attempt "+until(now, sec.NextRefresh))
			}
		}
		if len(lines) > 0 {
			fmt.Fprintf(w, "\n%s:\n  %s\n", printable.Name(sec.Name), strings.Join(lines, "\n  "))
		}
	}
	if p := s.LastPass; p != nil {
		fmt.Fprintf(w, "\nlast pass: %s, %s, %d request(s) to the source, took %s\n", printable.Name(string(p.Trigger)), Ago(now, p.Finished), p.Calls, Round(p.Finished.Sub(p.Started)))
	}
	if d := s.Daemon; d != nil {
		if d.Running {
			fmt.Fprintf(w, "daemon: running, pid %d, since %s, %d pass(es)\n", d.PID, Ago(now, d.Started), d.Passes)
		} else {
			fmt.Fprintf(w, "daemon: not running (last pid %d); `egoagent start` starts it\n", d.PID)
		}
		if !d.HoldUntil.IsZero() && d.HoldUntil.After(now) {
			fmt.Fprintf(w, "rate limited: no automatic pass until %s (%s)\n", d.HoldUntil.Local().Format(time.DateTime), until(now, d.HoldUntil))
		}
		if d.ConfigError != "" && d.Running {
			fmt.Fprintf(w, "config error (the daemon keeps the previous config): %s\n", printable.Text(d.ConfigError))
		}
	}
	return nil
}

func shortHome(p, home string) string {
	if home != "" && strings.HasPrefix(p, home+"/") {
		return "~" + p[len(home):]
	}
	return p
}

// Ago renders how long ago t was, or "never".
// next is the NEXT column: when, and why when it is not the schedule.
func next(now time.Time, sec Secret) string {
	s := until(now, sec.NextRefresh)
	if sec.NextWhy != "" && sec.NextWhy != TriggerSchedule && !sec.NextRefresh.IsZero() {
		s += " (" + printable.Name(string(sec.NextWhy)) + ")"
	}
	return s
}

// chain describes a dated file shared by several workspaces: which copy is
// newer, its last renewal, and the last write-back.
func chain(sec Secret, now time.Time) []string {
	var lines []string
	switch sec.Newer {
	case NewerLocal:
		lines = append(lines, "newer copy: this workspace's file (its program renewed it here)")
	case NewerSource:
		lines = append(lines, "newer copy: 1Password's (renewed in another workspace, or a new login)")
	case NewerNeither:
		lines = append(lines, "newer copy: neither; both hold the same renewal")
	}
	if !sec.LastRefresh.IsZero() {
		l := "last renewal " + Ago(now, sec.LastRefresh)
		if !sec.RefreshAt.IsZero() {
			l += "; renewed again on first use after " + sec.RefreshAt.Local().Format(time.DateTime) + " (" + until(now, sec.RefreshAt) + ")"
		}
		lines = append(lines, l)
	}
	if wb := sec.WriteBack; wb != nil {
		l := "write-back: uploaded " + Ago(now, wb.At)
		if !wb.OK {
			l = "write-back: failed " + Ago(now, wb.At)
			if wb.Class != "" {
				l += " (" + printable.Name(string(wb.Class)) + ")"
			}
		}
		// A failure's words are also the secret's error, shown below.
		if wb.Note != "" && sec.Error != "write-back: "+wb.Note {
			l += ": " + printable.Text(wb.Note)
		}
		lines = append(lines, l)
	}
	if r := sec.Renewal; r != nil {
		lines = append(lines, "renewal by egoagent "+Ago(now, r.At)+": "+printable.Text(r.Note))
	}
	if sec.NextWhy == TriggerNearRenewal && !sec.NextRefresh.IsZero() {
		lines = append(lines, "next look at 1Password "+until(now, sec.NextRefresh)+": near renewal, a copy renewed elsewhere must arrive before this one is used")
	}
	return lines
}

func Ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	if d < time.Second {
		return "just now"
	}
	return Round(d) + " ago"
}

func until(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := t.Sub(now)
	if d < 0 {
		return Round(-d) + " ago"
	}
	return "in " + Round(d)
}

// Round renders a duration in its largest sensible unit: 45s, 12m, 5h, 3d.
func Round(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	default:
		return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	}
}
