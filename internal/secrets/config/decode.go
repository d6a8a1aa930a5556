package config

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// expect says what each key must hold, in the words of
// docs/configuration.md, for a value of the wrong type. go-toml's own
// message names Go types ("struct field struct { Kind string ... }"),
// which mean nothing to someone editing a TOML file. Keys are as the
// documentation writes them, without array indexes.
var expect = map[string]string{
	"source":   "one [source] table: a line [source], then its keys one per line below it",
	"schedule": "one [schedule] table: a line [schedule], then its keys one per line below it",
	"check":    "one [check] table: a line [check], then its keys one per line below it",
	"secret":   "[[secret]] tables: a line [[secret]] for each secret, then its name, ref and path one per line below it",
	"mirror":   "[[mirror]] tables: a line [[mirror]] for each, then its vault one line below it",

	"source.kind":             `a string in double quotes: "1password" or "dir"`,
	"source.dir":              `a string in double quotes, such as "/srv/vault"`,
	"schedule.refresh":        `a string in double quotes, such as "@every 6h" or "0 */6 * * *"`,
	"schedule.jitter":         `a string in double quotes, such as "10m", or "0s" for none`,
	"schedule.start_deadline": `a string in double quotes, such as "60s"`,
	"check.codex_command":     `a string in double quotes, such as "codex"`,
	"check.timeout":           `a string in double quotes, such as "20s"`,
	"secret.name":             `a string in double quotes, such as "codex"`,
	"secret.ref":              `a string in double quotes, such as "op://egoengine/Codex Auth/auth.json"`,
	"secret.path":             `a string in double quotes, such as "~/.codex/auth.json"`,
	"secret.mode":             `a string in double quotes, such as "0600", because modes are octal strings`,
	"secret.check":            `a string in double quotes: "json" or "codex"`,
	"secret.policy":           `a string in double quotes: "replace" or "consumer-rewrites"`,
	"secret.schedule":         `a string in double quotes, such as "@daily"`,
	"secret.write_back":       "true or false, without quotes",
	"secret.renew":            "true or false, without quotes",
	"mirror.vault":            `a string in double quotes, such as "egoengine"`,
	"mirror.prefix":           `a string in double quotes, such as "home/"`,
	"mirror.mode":             `a string in double quotes, such as "0600", because modes are octal strings`,
}

// syntaxFix is appended to a parser error this file does not recognise.
const syntaxFix = "check the TOML syntax on this line: one key = value per line, strings in double quotes"

// decodeError turns go-toml's errors into ours: the line, what is wrong in
// the user's terms and what to write instead.
func decodeError(path string, data []byte, lines lineIndex, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) && len(strict.Errors) > 0 {
		de := strict.Errors[0]
		line, _ := de.Position()
		return &Error{File: path, Line: line, Msg: fmt.Sprintf("unknown key %q; check its spelling against docs/configuration.md", strings.Join(de.Key(), "."))}
	}
	var de *toml.DecodeError
	if !errors.As(err, &de) {
		return &Error{File: path, Line: 1, Msg: fmt.Sprintf("%v; %s", err, syntaxFix)}
	}
	line, col := de.Position()
	msg := strings.TrimPrefix(de.Error(), "toml: ")
	if m := typeMismatch(msg, de.Key(), lines.at[line]); m != "" {
		return &Error{File: path, Line: line, Msg: m}
	}
	if m, at := syntaxMessage(msg, de.Key(), lineText(data, line), col, lines, data, line); m != "" {
		return &Error{File: path, Line: at, Msg: m}
	}
	if k := de.Key(); len(k) > 0 {
		msg = fmt.Sprintf("%s: %s", strings.Join(k, "."), msg)
	}
	return &Error{File: path, Line: line, Msg: msg + "; " + syntaxFix}
}

var foundTOMLKind = regexp.MustCompile(`^cannot decode TOML (.+?) into `)

// typeMismatch explains a value of the wrong type, or "" if msg is not one.
func typeMismatch(msg string, key toml.Key, at expr) string {
	isMismatch := strings.HasPrefix(msg, "cannot decode TOML ") || strings.HasPrefix(msg, "cannot store ")
	if !isMismatch || len(key) == 0 {
		return ""
	}
	name := strings.Join(key, ".")
	want, known := expect[name]
	var found string
	switch {
	case at.kind == unstable.ArrayTable:
		found = fmt.Sprintf("[[%s]], a list of tables", name)
	case at.kind == unstable.Table:
		found = "a table"
	case at.kind == unstable.KeyValue && withoutIndexes(at.key) == name:
		found = describe(at.value)
		if at.raw != "" {
			found = at.raw + ", " + found
		}
	default:
		if m := foundTOMLKind.FindStringSubmatch(msg); m != nil {
			found = article(m[1])
		}
	}
	if !known {
		// A key this file does not describe; go-toml's Go types are no
		// help, so say only what was found.
		return fmt.Sprintf("%s cannot be %s; see docs/configuration.md for what it takes", name, found)
	}
	if found == "" {
		return fmt.Sprintf("%s must be %s", name, want)
	}
	return fmt.Sprintf("%s must be %s; found %s", name, want, found)
}

// describe names a TOML value kind for a message.
func describe(k unstable.Kind) string {
	switch k {
	case unstable.String:
		return "a string"
	case unstable.Integer:
		return "an integer (a number without quotes)"
	case unstable.Float:
		return "a number without quotes"
	case unstable.Bool:
		return "a boolean (true or false without quotes)"
	case unstable.Array:
		return "a list in [ ]"
	case unstable.InlineTable:
		return "an inline table in { }"
	case unstable.LocalDate, unstable.LocalTime, unstable.LocalDateTime, unstable.DateTime:
		return "a date or time without quotes"
	}
	return "a value of another type"
}

func article(kind string) string {
	switch kind {
	case "integer":
		return describe(unstable.Integer)
	case "float":
		return describe(unstable.Float)
	case "boolean":
		return describe(unstable.Bool)
	case "array":
		return describe(unstable.Array)
	case "inline table":
		return describe(unstable.InlineTable)
	case "table":
		return "a table"
	case "string":
		return "a string"
	}
	return "a " + kind
}

// syntaxMessage explains the parser errors people make by hand, and
// returns the line to report (an unclosed """ string is reported where it
// opens). It returns "" for an error it does not recognise.
func syntaxMessage(msg string, key toml.Key, text string, col int, lines lineIndex, data []byte, line int) (string, int) {
	name := strings.Join(key, ".")
	// first and atLine point back at the earlier line a clash is with,
	// when the index has it.
	first := func(k string) string {
		if l := lines.keys[k]; l > 0 && l != line {
			return fmt.Sprintf(" (first at line %d)", l)
		}
		return ""
	}
	atLine := func(k string) string {
		if l := lines.keys[k]; l > 0 && l != line {
			return fmt.Sprintf(" at line %d", l)
		}
		return ""
	}
	full := name
	if x, ok := lines.at[line]; ok && x.key != "" {
		full = x.key
	}
	switch {
	case strings.HasPrefix(msg, "key ") && strings.HasSuffix(msg, " is already defined"):
		return fmt.Sprintf("%s is set twice%s; a key is set once per table: keep one of the two", withoutIndexes(full), first(full)), line
	case strings.HasPrefix(msg, "table ") && strings.HasSuffix(msg, " already exists as an array of tables"):
		return fmt.Sprintf("%s is a list of [[%s]] tables%s, so [%s] cannot start it again; write [[%s]] here too: each one adds another", name, name, first(name+".0"), name, name), line
	case strings.HasPrefix(msg, "table ") && strings.HasSuffix(msg, " already exists"):
		return fmt.Sprintf("[%s] appears twice%s; put all its keys under one [%s]", name, first(name), name), line
	case strings.HasSuffix(msg, " already exists as a table, but should be an array table"):
		return fmt.Sprintf("[%s]%s is a single table, so [[%s]] cannot add to it; write [[%s]] there too", name, atLine(name), name, name), line
	case strings.HasSuffix(msg, " should be a table, not a value"):
		return fmt.Sprintf("%s is set to a value%s, so it cannot also be a table; keep one of the two", name, atLine(name)), line
	case msg == "basic strings cannot have new lines":
		return `this string has no closing double quote; end it with " on the same line`, line
	case msg == "literal strings cannot have new lines":
		return "this string has no closing single quote; end it with ' on the same line", line
	case strings.HasPrefix(msg, "multiline basic string not terminated"):
		return `a string opened with """ is never closed; close it with """`, opening(data, line, `"""`)
	case strings.HasPrefix(msg, "multiline literal string not terminated"):
		return "a string opened with ''' is never closed; close it with '''", opening(data, line, "'''")
	case msg == "expected '=' after key":
		if k := bareKey(text); k != "" {
			return fmt.Sprintf(`a key needs "=" and its value after it; write it as %s = "..."`, k), line
		}
		return `a key needs "=" and its value after it; write it as key = "value", such as kind = "dir"`, line
	case msg == "expected ']' to close table name":
		return "this table name has no closing bracket; write it as [name], such as [schedule]", line
	case msg == "expected ']]' to close array table name":
		return "this table name needs two closing brackets; write [[secret]] or [[mirror]]", line
	case strings.HasPrefix(msg, "invalid escape character"):
		return `a backslash in a "..." string starts an escape such as \n; write \\ for a backslash, or use single quotes ('...'), in which a backslash is just a backslash`, line
	case strings.HasPrefix(msg, "unexpected character") && strings.HasSuffix(msg, "at start of value"):
		k := bareKey(text)
		_, v, _ := strings.Cut(text, "=")
		v = strings.TrimSpace(stripComment(v))
		switch {
		case k != "" && v == "":
			return fmt.Sprintf(`%s has no value; write one after "=", such as %s = "..."`, k, k), line
		case k != "" && startsWithLetter(v):
			return fmt.Sprintf(`the value %s is not in quotes; strings need double quotes: %s = %q`, v, k, v), line
		}
		return `this value is not a string, number or true/false; strings need double quotes, such as kind = "dir"`, line
	case strings.HasPrefix(msg, "expected newline but got"):
		rest := ""
		if col >= 1 && col <= len(text) {
			rest = strings.TrimSpace(stripComment(text[col-1:]))
		}
		if strings.HasPrefix(strings.TrimSpace(text), "[") {
			return fmt.Sprintf("a table header stands alone on its line; put %s on a line of its own below it, one key = value per line", quoteOr(rest, "each key")), line
		}
		return fmt.Sprintf("unexpected %s after the value; write one key = value per line, with the whole of a string inside its double quotes", quoteOr(rest, "text")), line
	case strings.HasPrefix(msg, "invalid character at start of key"):
		return `a line starts with a key (such as name = "codex"), a table header (such as [[secret]]) or # for a comment`, line
	case msg == "array is incomplete":
		return `this list has no closing "]"; close it, such as ["a", "b"]`, line
	case msg == "inline table is incomplete":
		return `this inline table has no closing "}"; close it, or write the table as [name] with one key = value per line`, line
	}
	return "", line
}

// lineText returns line n (from 1) of data, without its newline.
func lineText(data []byte, n int) string {
	for i := 1; i < n; i++ {
		j := bytes.IndexByte(data, '\n')
		if j < 0 {
			return ""
		}
		data = data[j+1:]
	}
	if j := bytes.IndexByte(data, '\n'); j >= 0 {
		data = data[:j]
	}
	return strings.TrimSuffix(string(data), "\r")
}

// opening finds the last line at or before line that contains quote, where
// an unclosed multi-line string starts.
func opening(data []byte, line int, quote string) int {
	for l := line; l >= 1; l-- {
		if strings.Contains(lineText(data, l), quote) {
			return l
		}
	}
	return line
}

var bareKeyRE = regexp.MustCompile(`^\s*([A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*)`)

// bareKey returns the key at the start of a line, or "".
func bareKey(text string) string {
	if m := bareKeyRE.FindStringSubmatch(text); m != nil {
		return m[1]
	}
	return ""
}

// stripComment drops a trailing # comment that is not inside quotes.
func stripComment(s string) string {
	var quote byte
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quote != 0 && c == quote:
			quote = 0
		case quote == 0 && (c == '"' || c == '\''):
			quote = c
		case quote == 0 && c == '#':
			return s[:i]
		}
	}
	return s
}

func startsWithLetter(s string) bool {
	return s != "" && (s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z')
}

func quoteOr(s, otherwise string) string {
	if s == "" {
		return otherwise
	}
	return fmt.Sprintf("%q", s)
}
