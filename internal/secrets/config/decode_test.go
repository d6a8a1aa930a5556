package config

import (
	"reflect"
	"strings"
	"testing"
)

// messageCase is a configuration Parse must refuse, and substrings its
// error must contain: the file, the line, what is wrong and the fix.
type messageCase struct {
	name, toml string
	want       []string
}

// checkMessages parses each case and wants every substring in the error;
// none may show a Go type.
func checkMessages(t *testing.T, cases []messageCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("cfg.toml", []byte(tc.toml), Env{Home: "/home/u"})
			if err == nil {
				t.Fatalf("accepted; want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			for _, goish := range []string{"struct", "[]", "toml:\"", "config.file"} {
				if strings.Contains(err.Error(), goish) {
					t.Errorf("error %q shows Go's %q", err, goish)
				}
			}
		})
	}
}

// A value of the wrong type names the key, what it must be and what was
// written, not the Go struct behind it.
func TestWrongTypeSaysWhatToWrite(t *testing.T) {
	checkMessages(t, []messageCase{
		{"jitter as a number", "[schedule]\njitter = 10\n", []string{
			`cfg.toml:2: schedule.jitter must be a string in double quotes, such as "10m", or "0s" for none; found 10, an integer`}},
		{"timeout as a number", "[check]\ntimeout = 20\n", []string{`cfg.toml:2: check.timeout must be a string in double quotes, such as "20s"; found 20, an integer`}},
		{"refresh as a list", "[schedule]\nrefresh = [\"@daily\"]\n", []string{`cfg.toml:2: schedule.refresh must be a string in double quotes, such as "@every 6h"`, "found a list in [ ]"}},
		{"refresh as a date", "[schedule]\nrefresh = 2024-01-01\n", []string{`cfg.toml:2: schedule.refresh must be`, "found 2024-01-01, a date or time without quotes"}},
		{"secret as a string", "secret = \"x\"\n", []string{`cfg.toml:1: secret must be [[secret]] tables: a line [[secret]] for each secret`, `found "x", a string`}},
		{"secret as a list", "secret = [1, 2]\n", []string{`cfg.toml:1: secret must be [[secret]] tables`, "found a list in [ ]"}},
		{"source as a string", "source = \"dir\"\n", []string{`cfg.toml:1: source must be one [source] table: a line [source]`, `found "dir", a string`}},
		{"source as a list of tables", "[[source]]\nkind = \"dir\"\n", []string{`cfg.toml:1: source must be one [source] table`, "found [[source]], a list of tables"}},
		{"kind as a number", "[source]\nkind = 1\n", []string{`cfg.toml:2: source.kind must be a string in double quotes: "1password" or "dir"; found 1, an integer`}},
		{"mode as a number", "[[secret]]\nname = \"a\"\nmode = 600\n", []string{
			`cfg.toml:3: secret.mode must be a string in double quotes, such as "0600", because modes are octal strings; found 600, an integer`}},
		{"mode as octal", "[[mirror]]\nvault = \"v\"\nmode = 0o600\n", []string{`cfg.toml:3: mirror.mode must be a string in double quotes, such as "0600"`, "found 0o600, an integer"}},
		{"name as a boolean, second secret", "[[secret]]\nname = \"a\"\n[[secret]]\nname = true\n", []string{
			`cfg.toml:4: secret.name must be a string in double quotes, such as "codex"; found true, a boolean`}},
		{"vault as a float", "[[mirror]]\nvault = 1.5\n", []string{`cfg.toml:2: mirror.vault must be a string in double quotes, such as "egoengine"; found 1.5, a number without quotes`}},
		{"policy as an inline table", "[[secret]]\npolicy = {keep = true}\n", []string{`cfg.toml:2: secret.policy must be a string in double quotes: "replace" or "consumer-rewrites"; found an inline table in { }`}},
	})
}

// Every key of the file has words for a wrong type.
func TestExpectCoversEveryKey(t *testing.T) {
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			key := f.Tag.Get("toml")
			if prefix != "" {
				key = prefix + "." + key
			}
			if _, ok := expect[key]; !ok {
				t.Errorf("expect has no entry for %q", key)
			}
			ft := f.Type
			if ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				walk(key, ft)
			}
		}
	}
	walk("", reflect.TypeOf(file{}))
}

// The mistakes people make typing TOML by hand get plain words and a fix,
// at their line.
func TestSyntaxErrorsSayWhatToWrite(t *testing.T) {
	checkMessages(t, []messageCase{
		{"key twice", "[[secret]]\nname = \"a\"\nname = \"b\"\n", []string{"cfg.toml:3: secret.name is set twice (first at line 2)", "keep one of the two"}},
		{"key twice, top table", "[schedule]\njitter = \"1m\"\nrefresh = \"@daily\"\njitter = \"2m\"\n", []string{"cfg.toml:4: schedule.jitter is set twice (first at line 2)"}},
		{"table twice", "[source]\nkind = \"dir\"\n[source]\n", []string{"cfg.toml:3: [source] appears twice (first at line 1); put all its keys under one [source]"}},
		{"[schedule] twice", "[schedule]\nrefresh = \"@daily\"\n\n[schedule]\njitter = \"1m\"\n", []string{"cfg.toml:4: [schedule] appears twice (first at line 1)"}},
		{"[secret] after [[secret]]", "[[secret]]\nname = \"a\"\n[secret]\n", []string{"cfg.toml:3: secret is a list of [[secret]] tables (first at line 1)", "write [[secret]] here too"}},
		{"[[secret]] after [secret]", "[secret]\nname = \"a\"\n[[secret]]\n", []string{"cfg.toml:3: [secret] at line 1 is a single table", "write [[secret]] there too"}},
		{"value then table", "[source]\nkind = \"dir\"\n[source.kind]\n", []string{"cfg.toml:3: source.kind is set to a value at line 2, so it cannot also be a table"}},
		{"unclosed string", "[source]\nkind = \"dir\ndir = \"x\"\n", []string{`cfg.toml:2: this string has no closing double quote; end it with " on the same line`}},
		{"unclosed literal string", "[[secret]]\npath = '~/x\n", []string{"cfg.toml:2: this string has no closing single quote"}},
		{"unclosed multi-line string", "[source]\nkind = \"\"\"dir\n\n[schedule]\n", []string{`cfg.toml:2: a string opened with """ is never closed; close it with """`}},
		{"missing =", "[source]\nkind \"dir\"\n", []string{`cfg.toml:2: a key needs "=" and its value after it; write it as kind = "..."`}},
		{"colon for =", "[[secret]]\nname: \"codex\"\n", []string{`cfg.toml:2: a key needs "="`, `name = "..."`}},
		{"unclosed [", "[source\nkind = \"dir\"\n", []string{"cfg.toml:1: this table name has no closing bracket; write it as [name], such as [schedule]"}},
		{"unclosed [[", "[[secret]\nname = \"a\"\n", []string{"cfg.toml:1: this table name needs two closing brackets; write [[secret]] or [[mirror]]"}},
		{"bad escape", "[source]\nkind = \"dir\"\ndir = \"C:\\vault\"\n", []string{`cfg.toml:3: a backslash in a "..." string starts an escape`, `write \\ for a backslash, or use single quotes`}},
		{"bare word", "[source]\nkind = dir\n", []string{`cfg.toml:2: the value dir is not in quotes; strings need double quotes: kind = "dir"`}},
		{"bare word with a comment", "[[secret]]\ncheck = codex # the CLI\n", []string{`cfg.toml:2: the value codex is not in quotes; strings need double quotes: check = "codex"`}},
		{"no value", "[source]\nkind =\n", []string{`cfg.toml:2: kind has no value; write one after "=", such as kind = "..."`}},
		{"text after the value", "[source]\nkind = \"dir\" dir\n", []string{`cfg.toml:2: unexpected "dir" after the value; write one key = value per line`}},
		{"two keys on a line", "[source]\nkind = \"dir\", dir = \"v\"\n", []string{`cfg.toml:2: unexpected ", dir = \"v\"" after the value; write one key = value per line`}},
		{"key after a header", "[[secret]] name = \"codex\"\n", []string{`cfg.toml:1: a table header stands alone on its line; put "name = \"codex\"" on a line of its own below it`}},
		{"line starting with =", "[source]\n= \"dir\"\n", []string{"cfg.toml:2: a line starts with a key", "# for a comment"}},
		{"unclosed list", "[schedule]\nrefresh = [\"a\"\n", []string{`cfg.toml:2: this list has no closing "]"`}},
		{"unclosed inline table", "[schedule]\nrefresh = {a = 1\n", []string{`cfg.toml:2: this inline table has no closing "}"`}},
		{"unrecognised", "[source]\nkind = 0x\n", []string{"cfg.toml:2: radix prefix must be followed by at least one digit; check the TOML syntax on this line: one key = value per line, strings in double quotes"}},
	})
}
