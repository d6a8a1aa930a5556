package status

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/veraticus/egoengine/internal/secrets/source"
)

// Strings in the state come from outside: names are 1Password item titles
// (mirrored Documents), errors and notes quote whatever the source or a
// file said. None of it may reach the terminal raw.

const forged = "ok: 3 fresh"

func hostileState() *State {
	return &State{
		LastPass: &Pass{Trigger: "sync\n" + forged, Started: now.Add(-6 * time.Minute), Finished: now.Add(-5 * time.Minute)},
		Daemon:   &Daemon{PID: 42, Running: true, Started: now.Add(-time.Hour), ConfigError: "line 3:\n" + forged + "\x1b[0m"},
		Secrets: []Secret{
			{Name: "home/x\n" + forged, State: Stale, Path: "/home/u/.ssh/x\n" + forged,
				Error: "denied\n" + forged + "\x1b[2J", ErrorClass: "auth\n" + forged, StaleSince: now.Add(-3 * time.Hour)},
			{Name: "\x1b]0;pwned\x07", State: Fresh, Path: "/home/u/.t\u202etxt",
				Note: "kept\r\n" + forged, Check: "valid\u009b2J\u2066",
				Newer: NewerLocal, LastRefresh: now.Add(-time.Hour), RefreshAt: now.Add(time.Hour),
				NextRefresh: now.Add(time.Minute), NextWhy: "near\n" + forged,
				WriteBack: &WriteBack{At: now.Add(-time.Minute), Class: "read-only\n" + forged, Note: "denied\n" + forged + "\x1b[2J"}},
			{Name: "a\u202eb\u200b", State: "fresh\n" + forged, Path: "/home/u/p\x00\x7f"},
			{Name: "nb\u00a0sp\xff", State: Missing, ErrorClass: "not-found", Error: "item \"x\" gone\x00\t" + forged},
		},
	}
}

// benignState has the same shape as hostileState with harmless strings: it
// prints the same number of lines when the hostile one is made printable.
func benignState() *State {
	s := hostileState()
	s.LastPass.Trigger = "sync"
	s.Daemon.ConfigError = "line 3: bad"
	for i := range s.Secrets {
		sec := &s.Secrets[i]
		sec.Name, sec.Path = "s"+strconv.Itoa(i), "/home/u/s"+strconv.Itoa(i)
		if sec.WriteBack != nil {
			wb := *sec.WriteBack
			sec.WriteBack = &wb
		}
		for _, f := range []*string{&sec.Error, &sec.Note, &sec.Check, wbNote(sec)} {
			if *f != "" {
				*f = "plain"
			}
		}
		if sec.NextWhy != "" {
			sec.NextWhy = "plain"
		}
		for _, f := range []*source.Class{&sec.ErrorClass, wbClass(sec)} {
			if *f != "" {
				*f = "plain"
			}
		}
	}
	s.Secrets[2].State = "odd"
	return s
}

func wbNote(sec *Secret) *string {
	if sec.WriteBack == nil {
		return new(string)
	}
	return &sec.WriteBack.Note
}

func wbClass(sec *Secret) *source.Class {
	if sec.WriteBack == nil {
		return new(source.Class)
	}
	return &sec.WriteBack.Class
}

// checkShown fails unless out is wantLines lines of printable text with no
// line (however indented) that starts with the forged summary.
func checkShown(t *testing.T, out string, wantLines int) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != wantLines {
		t.Errorf("%d lines, want %d:\n%s", len(lines), wantLines, out)
	}
	for _, r := range out {
		if r != '\n' && (r < 0x20 || r == 0x7f || r == '\x1b' || r == '\u009b' || r == '\u202e' || r == utf8.RuneError || !strconv.IsPrint(r)) {
			t.Fatalf("raw %U reached the output:\n%q", r, out)
		}
	}
	for _, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), forged) {
			t.Fatalf("forged line %q in:\n%s", l, out)
		}
	}
}

func TestHumanHostileStrings(t *testing.T) {
	var plain bytes.Buffer
	if err := Human(&plain, benignState(), now, "/home/u"); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := Human(&b, hostileState(), now, "/home/u"); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	// header + 4 rows; 3 detail blocks (blank, name, 2 + 5 + 1 lines: the
	// second with newer copy, renewal, write-back); blank + last pass;
	// daemon + config error.
	const want = 5 + 4 + 7 + 3 + 2 + 2
	checkShown(t, plain.String(), want)
	checkShown(t, out, want)
	for _, s := range []string{
		`"home/x\nok: 3 fresh"`,   // a name, quoted
		`"~/.ssh/x\nok: 3 fresh"`, // a path, quoted after shortening
		`"\x1b]0;pwned\a"`,        // OSC title
		`"a\u202eb\u200b"`,        // bidi override, zero width
		`"nb\u00a0sp\xff"`,        // NBSP, invalid UTF-8
		`error ("auth\nok: 3 fresh"): denied\nok: 3 fresh\x1b[2J`, // class quoted, error escaped
		`kept\r\nok: 3 fresh`,         // note escaped, not quoted
		`check: valid\u009b2J\u2066`,  // C1 CSI, isolate
		`in 1m ("near\nok: 3 fresh")`, // why next, quoted
		`write-back: failed 1m ago ("read-only\nok: 3 fresh"): denied\nok: 3 fresh\x1b[2J`,
		`gone\x00\tok: 3 fresh`,                         // NUL, tab
		`last pass: "sync\nok: 3 fresh",`,               // trigger
		`previous config): line 3:\nok: 3 fresh\x1b[0m`, // daemon's config error
	} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %s:\n%s", s, out)
		}
	}
}

func TestMetadataHostileStrings(t *testing.T) {
	synced := &Pass{Finished: now.Add(-5 * time.Minute)}
	cases := []struct {
		name string
		st   *State
		want string
	}{
		{"stale name and class", &State{LastPass: synced, Secrets: []Secret{
			{Name: "home/x\n" + forged, State: Stale, ErrorClass: "auth\x1b[2J", StaleSince: now.Add(-3 * time.Hour)}}},
			`"home/x\nok: 3 fresh" stale 3h ("auth\x1b[2J")`},
		{"expiring name", &State{LastPass: synced, Secrets: []Secret{
			{Name: "x\n" + forged, State: Fresh, Expires: now.Add(30 * time.Hour)}}},
			`ok: 1 fresh, synced 5m ago; "x\nok: 3 fresh" expires in 30h`},
		{"missing, OSC and bidi", &State{LastPass: synced, Secrets: []Secret{
			{Name: "\x1b]0;pwned\x07", State: Missing, ErrorClass: "not-found"},
			{Name: "a\u202eb", State: Pending}}},
			`2 of 2 not fresh: "\x1b]0;pwned\a" missing (not-found)`},
		{"write-back class", &State{LastPass: synced, Secrets: []Secret{
			{Name: "codex", State: Kept, WriteBack: &WriteBack{Class: "ro\x1b[2J"}}}},
			`ok: 1 fresh, synced 5m ago; codex write-back failing ("ro\x1b[2J")`},
		{"renewal class", &State{LastPass: synced, Secrets: []Secret{
			{Name: "codex", State: Fresh, Renewal: &Renewal{Failed: true, Class: "x\x1b[2J"}}}},
			`ok: 1 fresh, synced 5m ago; codex renewal failing ("x\x1b[2J")`},
		{"renewal left to another", &State{LastPass: synced, Secrets: []Secret{
			{Name: "codex", State: Fresh, Renewal: &Renewal{Note: "ws/1 renews it"}}}},
			`ok: 1 fresh, synced 5m ago`},
		{"pending C1", &State{LastPass: synced, Secrets: []Secret{{Name: "p\u009b2J", State: Pending}}},
			`"p\u009b2J" pending`},
		{"whole hostile state", hostileState(),
			`3 of 4 not fresh: "home/x\nok: 3 fresh" stale 3h ("auth\nok: 3 fresh"); config error (old config in use)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Metadata(tc.st, now)
			checkShown(t, got, 1)
			if got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestMetadataCutsOnARuneBoundary(t *testing.T) {
	for pad := 0; pad < 4; pad++ {
		st := &State{Secrets: []Secret{{Name: strings.Repeat("x", pad) + strings.Repeat("日", 1000), State: Pending}}}
		got := Metadata(st, now)
		if len(got) > MetadataMax || !utf8.ValidString(got) || !strings.HasSuffix(got, "...") {
			t.Fatalf("pad %d: %d bytes, valid UTF-8 %v: ...%q", pad, len(got), utf8.ValidString(got), got[len(got)-12:])
		}
	}
	// A hostile name long enough to be cut still comes out printable.
	st := &State{Secrets: []Secret{{Name: strings.Repeat("\x1b[2J\n日", 400), State: Stale}}}
	checkShown(t, Metadata(st, now), 1)
}
