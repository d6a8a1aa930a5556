package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const good = `# the image's config
[source]
kind = "1password"

[schedule]
refresh = "@every 6h"
jitter = "10m"

[[secret]]
name = "codex"
ref = "op://egoengine/Codex Auth/auth.json"
path = "~/.codex/auth.json"
check = "codex"
policy = "consumer-rewrites"

[[secret]]
name = "npmrc"
ref = "op://egoengine/npm/section/token"
path = "$HOME/.npmrc"
mode = "0400"
schedule = "0 */2 * * *"

[[mirror]]
vault = "egoengine"
`

func TestParseGood(t *testing.T) {
	c, err := Parse("/etc/egoagent/config.toml", []byte(good), Env{Home: "/home/joshsymonds"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Source.Kind != SourceOnePassword || c.Schedule.Refresh != "@every 6h" || c.Schedule.Jitter != 10*time.Minute {
		t.Fatalf("source/schedule: %+v %+v", c.Source, c.Schedule)
	}
	if c.Schedule.StartDeadline != DefaultStartDeadline || c.Check.CodexCommand != "codex" || c.Check.Timeout != DefaultCheckTimeout {
		t.Fatalf("defaults: %+v %+v", c.Schedule, c.Check)
	}
	codex := c.Secrets[0]
	if codex.Path != "/home/joshsymonds/.codex/auth.json" || codex.Mode != 0o600 || codex.Check != "codex" ||
		codex.Policy != PolicyConsumerRewrites || codex.Ref.Item != "Codex Auth" || codex.Ref.Field != "auth.json" || codex.Line != 9 {
		t.Fatalf("codex: %+v", codex)
	}
	npm := c.Secrets[1]
	if npm.Path != "/home/joshsymonds/.npmrc" || npm.Mode != 0o400 || npm.Ref.Section != "section" || npm.Policy != PolicyReplace || npm.Schedule == "" {
		t.Fatalf("npmrc: %+v", npm)
	}
	if m := c.Mirrors[0]; m.Vault != "egoengine" || m.Prefix != "home/" || m.Mode != 0o600 {
		t.Fatalf("mirror: %+v", m)
	}
}

func TestDirSourceIsRelativeToTheConfigFile(t *testing.T) {
	c, err := Parse("/srv/demo/config.toml", []byte("[source]\nkind = \"dir\"\ndir = \"vault\"\n[[mirror]]\nvault = \"v\"\n"), Env{Home: "/home/u"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Source.Dir != "/srv/demo/vault" {
		t.Fatalf("dir = %s", c.Source.Dir)
	}
}

// Every bad configuration names the file, the line and what to do.
func TestParseBad(t *testing.T) {
	secret := func(extra string) string {
		return "[[secret]]\nname = \"codex\"\nref = \"op://egoengine/Codex Auth/auth.json\"\npath = \"~/.codex/auth.json\"\n" + extra
	}
	cases := []struct {
		name, toml, want string
	}{
		{"unknown top key", "sorce = 1\n", `cfg.toml:1: unknown key "sorce"`},
		{"unknown secret key", secret("chek = \"codex\"\n"), `cfg.toml:5: unknown key "secret.chek"`},
		{"syntax", "[[secret]\n", "cfg.toml:1:"},
		{"wrong type", "[schedule]\njitter = 5\n", "cfg.toml:2:"},
		{"bad duration", "[schedule]\njitter = \"5 minutes\"\n", `"5 minutes" is not a duration`},
		{"nothing to do", "[source]\nkind = \"1password\"\n", "add at least one [[secret]] or [[mirror]]"},
		{"unknown source", "[source]\nkind = \"vault\"\n", `cfg.toml:2: unknown source kind "vault"`},
		{"dir without dir", "[source]\nkind = \"dir\"\n", `cfg.toml:2: source kind "dir" needs dir`},
		{"bad cron", "[schedule]\nrefresh = \"every day\"\n" + secret(""), `cfg.toml:2: schedule.refresh: "every day" is not a schedule`},
		{"no name", "[[secret]]\nref = \"op://a/b/c\"\npath = \"~/x\"\n", `cfg.toml:1: [[secret]] #1 has no name`},
		{"bad name", "[[secret]]\nname = \"Codex Auth\"\n", `cfg.toml:2: secret name "Codex Auth"`},
		{"duplicate name", secret("") + secret(""), `cfg.toml:6: secret "codex" is defined twice (first at line 1)`},
		{"no ref", "[[secret]]\nname = \"x\"\npath = \"~/x\"\n", `cfg.toml:1: secret "x" has no ref`},
		{"bad ref scheme", "[[secret]]\nname = \"x\"\nref = \"egoengine/item/field\"\npath = \"~/x\"\n", `cfg.toml:3: secret "x": reference "egoengine/item/field" must start with "op://"`},
		{"bad ref segments", "[[secret]]\nname = \"x\"\nref = \"op://a//c\"\npath = \"~/x\"\n", "cfg.toml:3: secret \"x\": reference \"op://a//c\" has an empty segment"},
		{"too many segments", "[[secret]]\nname = \"x\"\nref = \"op://a/b/c/d/e\"\npath = \"~/x\"\n", "has 5 segments"},
		{"no path", "[[secret]]\nname = \"x\"\nref = \"op://a/b/c\"\n", `cfg.toml:1: secret "x" has no path`},
		{"relative path", "[[secret]]\nname = \"x\"\nref = \"op://a/b/c\"\npath = \".codex/auth.json\"\n", `cfg.toml:4: secret "x": path ".codex/auth.json" is relative; write it as "~/.codex/auth.json"`},
		{"escaping path", "[[secret]]\nname = \"x\"\nref = \"op://a/b/c\"\npath = \"~/../other/x\"\n", `cfg.toml:4: secret "x": path "~/../other/x" is outside the home /home/u`},
		{"absolute outside", "[[secret]]\nname = \"x\"\nref = \"op://a/b/c\"\npath = \"/etc/shadow\"\n", "is outside the home"},
		{"other user's home", "[[secret]]\nname = \"x\"\nref = \"op://a/b/c\"\npath = \"~root/x\"\n", "only ~/ (your own home)"},
		{"same path twice", secret("") + "[[secret]]\nname = \"y\"\nref = \"op://a/b/c\"\npath = \"~/.codex/auth.json\"\n", `cfg.toml:8: secret "y" writes /home/u/.codex/auth.json, as secret "codex" already does`},
		{"mode for others", secret("mode = \"0644\"\n"), `cfg.toml:5: secret "codex": mode "0644" gives access to group or others`},
		{"mode not octal", secret("mode = \"rw-------\"\n"), `mode "rw-------" is not an octal permission`},
		{"mode as number", secret("mode = 0o600\n"), "cfg.toml:5:"},
		{"mode unreadable", secret("mode = \"0200\"\n"), "does not let the owner read"},
		{"unknown check", secret("check = \"codex-login\"\n"), `cfg.toml:5: secret "codex":`},
		{"unknown policy", secret("policy = \"keep\"\n"), `cfg.toml:5: secret "codex": unknown policy "keep"; use "replace" (default) or "consumer-rewrites"`},
		{"bad secret schedule", secret("schedule = \"hourly\"\n"), `cfg.toml:5: secret "codex": schedule: "hourly" is not a schedule`},
		{"mirror without vault", "[[mirror]]\nprefix = \"home/\"\n", `cfg.toml:1: [[mirror]] #1 has no vault`},
		{"mirror prefix", "[[mirror]]\nvault = \"v\"\nprefix = \"home\"\n", `cfg.toml:3: mirror prefix "home" must end with '/'`},
		{"zero deadline", "[schedule]\nstart_deadline = \"0s\"\n" + secret(""), "cfg.toml:2: schedule.start_deadline must be more than zero"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("cfg.toml", []byte(tc.toml), Env{Home: "/home/u"})
			if err == nil {
				t.Fatalf("no error; want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q\ndoes not contain %q", err, tc.want)
			}
		})
	}
}

func TestLoadMissingFileSaysWhatToDo(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "config.toml"), Env{Home: "/home/u"})
	if err == nil || !strings.Contains(err.Error(), "EGOAGENT_CONFIG") {
		t.Fatalf("err = %v", err)
	}
}

func TestPathOrder(t *testing.T) {
	home := t.TempDir()
	none := func(string) string { return "" }
	if p := Path(none, home); p != "/etc/egoagent/config.toml" {
		t.Fatalf("default = %s", p)
	}
	user := filepath.Join(home, ".config", "egoagent", "config.toml")
	os.MkdirAll(filepath.Dir(user), 0o700)
	os.WriteFile(user, nil, 0o600)
	if p := Path(none, home); p != user {
		t.Fatalf("with a user config = %s", p)
	}
	if p := Path(func(string) string { return "/x.toml" }, home); p != "/x.toml" {
		t.Fatalf("with EGOAGENT_CONFIG = %s", p)
	}
}

func TestInHome(t *testing.T) {
	for rel, ok := range map[string]bool{
		".ssh/config": true, "a/b/c": true,
		"../x": false, "a/../../x": false, "/etc/passwd": false, "": false, "a//b": false, "./a": false,
	} {
		_, err := InHome("/home/u", rel)
		if (err == nil) != ok {
			t.Errorf("InHome(%q): err = %v", rel, err)
		}
	}
}
