// Package printable makes strings that come from outside egoagent safe to
// show on a person's terminal. A 1Password item title, a file's content or
// an error message can hold a newline, which forges extra lines of output
// (a fake "ok: 3 fresh" under a failing secret), or ESC and other control
// bytes, which the terminal obeys as commands. Every such string passes
// through Name (identifiers) or Text (prose) before it is shown.
package printable

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Name renders an identifier that came from outside (a secret name or
// Document title, a path, a reference, a state or class word): unchanged
// when every rune is printable and there is no backslash, quoted with
// strconv.Quote otherwise.
//
// Why this shape: two different identifiers must never look the same, or a
// hostile title could pass for an honest one. The raw form never contains a
// backslash, and the quoted form always does (Quote escapes the backslash or
// the unprintable rune that caused the quoting), so the two forms cannot
// meet; within each form the mapping is one to one (identity, and Quote,
// which Unquote inverts). Hence Name is injective.
func Name(s string) string {
	if !strings.ContainsRune(s, '\\') && printable(s) {
		return s
	}
	return strconv.Quote(s)
}

// Text renders prose that came from outside (an error message, a note, a
// check's summary): every rune that strconv.IsPrint rejects, and every byte
// of invalid UTF-8, is replaced by a visible escape (\n, \x1b, \u202e...);
// the rest is left as it is. Unlike Name it does not quote, so it is not
// injective: it is for reading, not for telling identifiers apart.
func Text(s string) string {
	if printable(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(`\x`)
			b.WriteByte(hex[s[i]>>4])
			b.WriteByte(hex[s[i]&0xf])
		case strconv.IsPrint(r):
			b.WriteString(s[i : i+size])
		default:
			q := strconv.QuoteRuneToASCII(r) // '\n', '\x1b', '\u202e'
			b.WriteString(q[1 : len(q)-1])
		}
		i += size
	}
	return b.String()
}

const hex = "0123456789abcdef"

// printable reports whether every rune of s is valid UTF-8 and printable
// by strconv.IsPrint (which rejects controls, DEL, C1 controls, format
// characters such as U+202E and U+200B, and spaces other than ASCII space).
func printable(s string) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || !strconv.IsPrint(r) {
			return false
		}
		i += size
	}
	return true
}
