package check

import (
	"context"
	"strings"
	"testing"
)

func TestParseKind(t *testing.T) {
	for in, want := range map[string]Kind{"": KindNone, "none": KindNone, "json": KindJSON, "codex": KindCodex} {
		got, err := ParseKind(in)
		if err != nil || got != want {
			t.Errorf("ParseKind(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"JSON", "codex ", "toml", "codex-login"} {
		_, err := ParseKind(bad)
		if err == nil {
			t.Errorf("ParseKind(%q) succeeded", bad)
			continue
		}
		for _, k := range []string{`"none"`, `"json"`, `"codex"`, `"` + bad + `"`} {
			if !strings.Contains(err.Error(), k) {
				t.Errorf("ParseKind(%q) error %q does not mention %s", bad, err, k)
			}
		}
	}
}

func TestCheckNoneAndUnknown(t *testing.T) {
	c := New(Options{StageDir: t.TempDir()})
	if r := c.Check(context.Background(), KindNone, []byte("anything at all")); !r.OK || r.Summary != "no check" {
		t.Errorf("none: %+v", r)
	}
	if r := c.Check(context.Background(), Kind("yaml"), []byte("a: b")); r.OK || !strings.Contains(r.Summary, `"yaml"`) {
		t.Errorf("unknown kind: %+v", r)
	}
}

func TestCheckJSON(t *testing.T) {
	c := New(Options{StageDir: t.TempDir()})
	good := []string{`{}`, `{"a":[1,2,{"b":null}]}`, "  [1, 2]\n", `"just a string"`, `42`, `true`, `null`}
	for _, s := range good {
		if r := c.Check(context.Background(), KindJSON, []byte(s)); !r.OK || r.Summary != "json: well-formed" || !r.Expires.IsZero() {
			t.Errorf("json %q: %+v", s, r)
		}
	}
	bad := map[string]string{
		"":                   "file is empty",
		" \n\t":              "file is empty",
		`{"a":1`:             "not valid JSON",
		`{"a":1} {"b":2}`:    "syntax error at byte",
		"\xef\xbb\xbf{}":     "syntax error at byte 1 ",
		`{'single':'quote'}`: "syntax error at byte 2 ",
		`[1,]`:               "syntax error at byte 4 ",
		`secret-value`:       "syntax error at byte",
	}
	for s, want := range bad {
		r := c.Check(context.Background(), KindJSON, []byte(s))
		if r.OK || !strings.Contains(r.Summary, want) {
			t.Errorf("json %q: %+v, want a failure mentioning %q", s, r, want)
		}
	}
}

// encoding/json's own messages quote the offending character ("invalid
// character 's' looking for..."): the summary must carry the offset only.
func TestCheckJSONSummaryQuotesNothing(t *testing.T) {
	c := New(Options{StageDir: t.TempDir()})
	for _, s := range []string{`{"k": Zsecret}`, `Zsecret`, `{"k": "v" Z}`, `[Z]`} {
		r := c.Check(context.Background(), KindJSON, []byte(s))
		if r.OK || strings.Contains(r.Summary, "Z") || strings.Contains(r.Summary, "'") {
			t.Errorf("json %q: summary %q quotes the content", s, r.Summary)
		}
	}
}
