package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/veraticus/egoengine/internal/secrets/engine"
)

// What egoagent prints for a person quotes names from 1Password titles and
// errors from anywhere; none of it may reach the terminal raw.

const forgedLine = "ok: 3 fresh"

// checkTerminalText fails unless out is wantLines lines of printable text
// (tabs allowed where allowTab, for the console log's columns) with no line
// that starts with the forged summary.
func checkTerminalText(t *testing.T, out string, wantLines int, allowTab bool) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != wantLines {
		t.Errorf("%d lines, want %d:\n%s", len(lines), wantLines, out)
	}
	for _, r := range out {
		if r == '\n' || allowTab && r == '\t' {
			continue
		}
		if r < 0x20 || r == 0x7f || r == '\u009b' || r == '\u202e' || !strconv.IsPrint(r) {
			t.Fatalf("raw %U reached the terminal:\n%q", r, out)
		}
	}
	for _, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), forgedLine) {
			t.Fatalf("forged line %q in:\n%s", l, out)
		}
	}
}

func TestReportOutcomeHostileStrings(t *testing.T) {
	rep := &engine.Report{Outcomes: []engine.Outcome{
		{Name: "api", State: "fresh", Note: "written"},
		{Name: "home/x\n" + forgedLine, State: "fresh", Note: "written"},
		{Name: "\x1b]0;pwned\x07", State: "stale", Class: "unreachable", Error: "dial: no route\n" + forgedLine + "\x1b[2J"},
		{Name: "a\u202eb", State: "missing\r" + forgedLine, Class: "not-found\u009b2J", Error: "gone\u2066\x00"},
		{Name: "z\u200b\u00a0\xff", State: "fresh", Note: "kept\r\n" + forgedLine},
	}}
	var b bytes.Buffer
	err := reportOutcome(&b, rep, nil)
	if err == nil {
		t.Fatal("a report with stale secrets passed")
	}
	out := b.String()
	checkTerminalText(t, out, len(rep.Outcomes), false)
	want := strings.Join([]string{
		`api: fresh (written)`,
		`"home/x\nok: 3 fresh": fresh (written)`,
		`"\x1b]0;pwned\a": stale (unreachable): dial: no route\nok: 3 fresh\x1b[2J`,
		`"a\u202eb": "missing\rok: 3 fresh" ("not-found\u009b2J"): gone\u2066\x00`,
		`"z\u200b\u00a0\xff": fresh (kept\r\nok: 3 fresh)`,
	}, "\n") + "\n"
	if out != want {
		t.Fatalf("got\n%s\nwant\n%s", out, want)
	}
}

// The last line egoagent prints, `egoagent: <error>`, quotes a config path
// given on the command line here.
func TestPrintableFinalErrorLine(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "x\n"+forgedLine+"\x1b]0;pwned\x07\u202e.toml")
	_, stderr, code := egoagentHome(t, dir, "--config", cfg, "sync")
	if code != exitUsage {
		t.Fatalf("exit %d: %q", code, stderr)
	}
	checkTerminalText(t, stderr, 1, false)
	if !strings.HasPrefix(stderr, "egoagent: ") || !strings.Contains(stderr, `x\nok: 3 fresh\x1b]0;pwned\a\u202e.toml`) {
		t.Fatalf("stderr: %q", stderr)
	}
}

// egoagentHome runs egoagent (see TestMain) with HOME set to home.
func egoagentHome(t *testing.T, home string, args ...string) (string, string, int) {
	t.Helper()
	t.Setenv("HOME", home)
	return egoagent(t, args...)
}

func TestLogLinesArePrintable(t *testing.T) {
	for _, format := range []string{"console", "json"} {
		t.Run(format, func(t *testing.T) {
			f, err := os.CreateTemp(t.TempDir(), "stderr")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			// newLogger writes to os.Stderr as it is when called.
			saved := os.Stderr
			os.Stderr = f
			log, err := newLogger(format, false)
			os.Stderr = saved
			if err != nil {
				t.Fatal(err)
			}
			hostile := "home/x\n" + forgedLine + "\x1b]0;pwned\x07\u009b2J\u202e"
			log.With(zap.String("secret", hostile)).Warn("cannot refresh "+hostile,
				zap.Error(errors.New("denied\n"+forgedLine)), zap.Strings("names", []string{hostile}))
			log.Sync()
			b, err := os.ReadFile(f.Name())
			if err != nil {
				t.Fatal(err)
			}
			out := string(b)
			checkTerminalText(t, out, 1, format == "console")
			// Escaped by egoagent (and the backslash once more by JSON).
			want := `cannot refresh home/x\nok: 3 fresh\x1b]0;pwned\a\u009b2J\u202e`
			if format == "json" {
				want = strings.ReplaceAll(want, `\`, `\\`)
			}
			if !strings.Contains(out, want) {
				t.Fatalf("message not escaped as expected:\n%s", out)
			}
		})
	}
}
