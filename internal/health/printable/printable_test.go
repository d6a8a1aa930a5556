package printable

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"unicode/utf8"
)

var cases = []struct {
	name, in, ident, prose string
}{
	{"plain ascii", "home/x", "home/x", "home/x"},
	{"ascii with spaces", "gh token: ok", "gh token: ok", "gh token: ok"},
	{"accented", "café", "café", "café"},
	{"cjk", "日本", "日本", "日本"},
	{"empty", "", "", ""},
	{"newline forging a line", "home/x\nok: 3 fresh", `"home/x\nok: 3 fresh"`, `home/x\nok: 3 fresh`},
	{"carriage return", "a\rb", `"a\rb"`, `a\rb`},
	{"tab", "a\tb", `"a\tb"`, `a\tb`},
	{"CSI colour", "\x1b[31mred\x1b[0m", `"\x1b[31mred\x1b[0m"`, `\x1b[31mred\x1b[0m`},
	{"CSI clear screen", "\x1b[2J\x1b[H", `"\x1b[2J\x1b[H"`, `\x1b[2J\x1b[H`},
	{"OSC title with BEL", "\x1b]0;pwned\x07", `"\x1b]0;pwned\a"`, `\x1b]0;pwned\a`},
	{"C1 CSI", "a\u009b31mb", `"a\u009b31mb"`, `a\u009b31mb`},
	{"DEL", "a\x7fb", `"a\x7fb"`, `a\x7fb`},
	{"NUL", "a\x00b", `"a\x00b"`, `a\x00b`},
	{"right-to-left override", "exe.\u202etxt", `"exe.\u202etxt"`, `exe.\u202etxt`},
	{"left-to-right isolate", "a\u2066b", `"a\u2066b"`, `a\u2066b`},
	{"zero-width space", "gh\u200btoken", `"gh\u200btoken"`, `gh\u200btoken`},
	{"no-break space", "gh\u00a0token", `"gh\u00a0token"`, `gh\u00a0token`},
	{"invalid utf-8", "a\xffb\xc3", `"a\xffb\xc3"`, `a\xffb\xc3`},
	{"backslash", `a\nb`, `"a\\nb"`, `a\nb`},
	{"leading quote", `"quoted"`, `"quoted"`, `"quoted"`},
	{"replacement char itself", "a\ufffdb", "a\ufffdb", "a\ufffdb"},
}

func TestName(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Name(tc.in); got != tc.ident {
				t.Fatalf("Name(%q) = %s, want %s", tc.in, got, tc.ident)
			}
		})
	}
}

func TestText(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Text(tc.in); got != tc.prose {
				t.Fatalf("Text(%q) = %s, want %s", tc.in, got, tc.prose)
			}
		})
	}
}

// A raw title that looks like the quoted form of another must still differ
// from it.
func TestNameTellsLookalikesApart(t *testing.T) {
	a, b := "x\ny", `"x\ny"`
	if Name(a) == Name(b) {
		t.Fatalf("Name(%q) == Name(%q) == %s", a, b, Name(a))
	}
}

// For many random byte strings: nothing unprintable comes out of either
// function, and Name never maps two inputs to one output.
func TestRandomInputsComeOutPrintable(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	// Weighted towards the troublesome: controls, C1, bidi, invalid bytes.
	alphabet := []string{"a", "é", "日", " ", "\\", `"`, "\n", "\r", "\t", "\x1b", "\x07", "\x00", "\x7f",
		"\u009b", "\u202e", "\u2066", "\u200b", "\u00a0", "\xff", "\xc3", "\xe2\x80", "\ufffd", "x", "n"}
	seen := map[string]string{}
	for i := 0; i < 20000; i++ {
		var in []byte
		if i%2 == 0 {
			for n := rng.IntN(12); n > 0; n-- {
				in = append(in, alphabet[rng.IntN(len(alphabet))]...)
			}
		} else {
			in = make([]byte, rng.IntN(12))
			for j := range in {
				in[j] = byte(rng.UintN(256))
			}
		}
		s := string(in)
		for fn, out := range map[string]string{"Name": Name(s), "Text": Text(s)} {
			if !utf8.ValidString(out) {
				t.Fatalf("%s(%q) = %q is not valid UTF-8", fn, s, out)
			}
			for _, r := range out {
				if !strconv.IsPrint(r) && r != ' ' {
					t.Fatalf("%s(%q) = %q contains %U", fn, s, out, r)
				}
			}
		}
		n := Name(s)
		if prev, ok := seen[n]; ok && prev != s {
			t.Fatalf("Name(%q) == Name(%q) == %s", prev, s, n)
		}
		seen[n] = s
	}
}

func FuzzName(f *testing.F) {
	for _, tc := range cases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Name(s)
		for _, r := range out {
			if !strconv.IsPrint(r) {
				t.Fatalf("Name(%q) = %q contains %U", s, out, r)
			}
		}
		if out != s {
			back, err := strconv.Unquote(out)
			if err != nil || back != s {
				t.Fatalf("Name(%q) = %s does not unquote to the input", s, out)
			}
		}
		for _, r := range Text(s) {
			if !strconv.IsPrint(r) {
				t.Fatalf("Text(%q) contains %U", s, r)
			}
		}
	})
}
