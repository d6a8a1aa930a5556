package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// docDefaults reads the default of every key in docs/configuration.md's
// key tables, by "table.key": the second column, either the value (`"6h"`)
// or "no, " and the value. Keys without a TOML value there ("none", "yes",
// "no") are left out.
func docDefaults(t *testing.T) map[string]string {
	t.Helper()
	docs := filepath.Join("..", "..", "..", "docs")
	if _, err := os.Stat(docs); errors.Is(err, os.ErrNotExist) {
		// The Nix build tests a copy of the Go files alone
		// (nix/egoagent/package.nix); a checkout always has docs/.
		t.Skip("no docs/ folder beside the Go code (the Nix build's source)")
	}
	data, err := os.ReadFile(filepath.Join(docs, "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	heading := regexp.MustCompile("^### `\\[+([a-z_]+)\\]+`")
	row := regexp.MustCompile("^\\| `([a-z_]+)` \\| (?:no, )?`([^`]+)` \\|")
	out := map[string]string{}
	table := ""
	for _, line := range strings.Split(string(data), "\n") {
		if m := heading.FindStringSubmatch(line); m != nil {
			table = m[1]
		} else if strings.HasPrefix(line, "#") {
			table = ""
		} else if m := row.FindStringSubmatch(line); m != nil && table != "" {
			out[table+"."+m[1]] = m[2]
		}
	}
	return out
}

// TestDocumentedDefaults holds docs/configuration.md to the code: for each
// key with a documented default, a file that sets the key to that value
// must load exactly as one that leaves it out. It compares what Parse
// makes, so defaults declared in package check count too.
func TestDocumentedDefaults(t *testing.T) {
	docs := docDefaults(t)
	// Every default the code has must be documented, so that a broken
	// table cannot pass by yielding nothing.
	want := []string{
		"source.kind", "schedule.refresh", "schedule.jitter", "schedule.start_deadline",
		"check.codex_command", "check.timeout",
		"secret.mode", "secret.policy", "secret.write_back", "secret.renew", "mirror.prefix", "mirror.mode",
	}
	for _, k := range want {
		if _, ok := docs[k]; !ok {
			t.Errorf("docs/configuration.md documents no default for %s (found %v)", k, docs)
		}
	}
	const secret = "name = \"a\"\nref = \"op://v/i/f\"\npath = \"~/a\"\n"
	const mirror = "vault = \"v\"\n"
	load := func(t *testing.T, table, key, value string) *Config {
		t.Helper()
		set := ""
		if key != "" {
			set = key + " = " + value + "\n"
		}
		var src string
		switch table {
		case "secret":
			src = "[[secret]]\n" + secret + set + "[[mirror]]\n" + mirror
		case "mirror":
			src = "[[secret]]\n" + secret + "[[mirror]]\n" + mirror + set
		default:
			src = "[" + table + "]\n" + set + "[[secret]]\n" + secret + "[[mirror]]\n" + mirror
		}
		c, err := Parse("/etc/egoagent/config.toml", []byte(src), Env{Home: "/home/u"})
		if err != nil {
			t.Fatalf("%s = %s: %v", key, value, err)
		}
		// Lines move when a key is added; they are not settings.
		for i := range c.Secrets {
			c.Secrets[i].Line = 0
		}
		for i := range c.Mirrors {
			c.Mirrors[i].Line = 0
		}
		return c
	}
	for k, v := range docs {
		t.Run(k, func(t *testing.T) {
			table, key, _ := strings.Cut(k, ".")
			got, def := load(t, table, key, v), load(t, table, "", "")
			if !reflect.DeepEqual(got, def) {
				t.Errorf("docs/configuration.md gives %s the default %s, but the code's default differs:\nwith %s = %s: %+v\nleft out: %+v", k, v, key, v, got, def)
			}
		})
	}
}
