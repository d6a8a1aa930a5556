package printable

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

const hostile = "home/x\nok: 3 fresh\x1b]0;pwned\x07\u009b2J\u202e"

type stringer string

func (s stringer) String() string { return string(s) }

type item struct {
	Title string `json:"title"`
}

type obj struct{ title string }

func (o obj) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("title", o.title)
	return nil
}

// hostileLog logs one line whose message and fields all carry hostile text,
// through a logger built as newLogger builds it.
func hostileLog(enc zapcore.Encoder) string {
	var buf bytes.Buffer
	log := zap.New(Core(zapcore.NewCore(enc, zapcore.AddSync(&buf), zapcore.DebugLevel)))
	log = log.With(zap.String("with", hostile)).Named("n\x1b[2J")
	log.Info("pass done: "+hostile,
		zap.String("name", hostile),
		zap.Error(errors.New(hostile)),
		zap.NamedError("cause", fmt.Errorf("wrapped: %w", errors.New(hostile))),
		zap.Stringer("ref", stringer(hostile)),
		zap.Strings("names", []string{"ok", hostile}),
		zap.Object("item", obj{hostile}),
		zap.Any("reflected", item{hostile}),
		zap.ByteString("raw", []byte(hostile)),
		zap.Int("calls", 3),
		zap.String(hostile, "key"),
	)
	return buf.String()
}

func checkLogLine(t *testing.T, out string) {
	t.Helper()
	if n := strings.Count(out, "\n"); n != 1 || !strings.HasSuffix(out, "\n") {
		t.Fatalf("want exactly one line, got %d:\n%s", n, out)
	}
	for _, r := range strings.TrimSuffix(out, "\n") {
		if r < 0x20 && r != '\t' || r == 0x7f || r == '\u009b' || r == '\u202e' {
			t.Fatalf("raw %U in log line:\n%q", r, out)
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "ok: 3 fresh") {
			t.Fatalf("forged line in log:\n%s", out)
		}
	}
}

func TestLogConsoleHostileFields(t *testing.T) {
	ec := zap.NewDevelopmentEncoderConfig()
	ec.EncodeCaller = nil
	out := hostileLog(zapcore.NewConsoleEncoder(ec))
	checkLogLine(t, out)
	// The console encoder separates its columns with tabs; the message is
	// one column, its hostile tab-free content escaped.
	if !strings.Contains(out, `pass done: home/x\nok: 3 fresh\x1b]0;pwned\a\u009b2J\u202e`) {
		t.Fatalf("message not escaped as expected:\n%s", out)
	}
}

func TestLogJSONHostileFields(t *testing.T) {
	out := hostileLog(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()))
	checkLogLine(t, out)
	// JSON escapes C0 controls itself; what it decodes to must be clean too,
	// or a reader of the decoded log would see them.
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatal(err)
	}
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			for _, r := range v {
				if !strconv.IsPrint(r) {
					t.Fatalf("decoded JSON holds %U in %q:\n%s", r, v, out)
				}
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			for k, e := range v {
				walk(k)
				walk(e)
			}
		}
	}
	walk(m)
	if m["name"] != Text(hostile) {
		t.Fatalf("name = %q", m["name"])
	}
}

func TestLogObserverSeesCleanFields(t *testing.T) {
	obs, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(Core(obs)).With(zap.String("with", hostile))
	log.Warn(hostile, zap.Error(errors.New(hostile)), zap.Strings("names", []string{hostile}))
	log.Debug("quiet")
	if logs.Len() != 2 {
		t.Fatalf("%d entries, want 2", logs.Len())
	}
	e := logs.All()[0]
	want := Text(hostile)
	if strings.ContainsAny(e.Message, "\n\x1b\u009b\u202e") || e.Message != want {
		t.Fatalf("message %q, want %q", e.Message, want)
	}
	m := e.ContextMap()
	if m["with"] != want || m["error"] != want {
		t.Fatalf("fields not cleaned: %#v", m)
	}
	if names, _ := m["names"].([]any); len(names) != 1 || names[0] != want {
		t.Fatalf("array not cleaned: %#v", m["names"])
	}
}

func TestLogLevelStillApplies(t *testing.T) {
	obs, logs := observer.New(zapcore.InfoLevel)
	log := zap.New(Core(obs))
	log.Debug("hidden")
	log.Info("shown")
	if logs.Len() != 1 || logs.All()[0].Message != "shown" {
		t.Fatalf("%v", logs.All())
	}
}
