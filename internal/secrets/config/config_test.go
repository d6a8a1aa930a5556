package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veraticus/egoengine/internal/health/check"
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
write_back = true

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
	if c.Schedule.StartDeadline != DefaultStartDeadline || c.Check.CodexCommand != check.DefaultCodexCommand || c.Check.Timeout != check.DefaultTimeout {
		t.Fatalf("defaults: %+v %+v", c.Schedule, c.Check)
	}
	codex := c.Secrets[0]
	if codex.Path != "/home/joshsymonds/.codex/auth.json" || codex.Mode != 0o600 || codex.Check != "codex" ||
		codex.Policy != PolicyConsumerRewrites || !codex.WriteBack || codex.Ref.Item != "Codex Auth" || codex.Ref.Field != "auth.json" || codex.Line != 9 {
		t.Fatalf("codex: %+v", codex)
	}
	npm := c.Secrets[1]
	if npm.Path != "/home/joshsymonds/.npmrc" || npm.Mode != 0o400 || npm.Ref.Section != "section" || npm.Policy != PolicyReplace || npm.WriteBack || npm.Schedule == "" {
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
		{"syntax", "[[secret]\n", "cfg.toml:1: this table name needs two closing brackets; write [[secret]] or [[mirror]]"},
		{"wrong type", "[schedule]\njitter = 5\n", `cfg.toml:2: schedule.jitter must be a string in double quotes, such as "10m"`},
		{"bad duration", "[schedule]\njitter = \"5 minutes\"\n", `"5 minutes" is not a duration`},
		{"nothing to do", "[source]\nkind = \"1password\"\n", "cfg.toml:1: nothing to do: add at least one [[secret]] or [[mirror]] table"},
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
		{"mode as number", secret("mode = 0o600\n"), `cfg.toml:5: secret.mode must be a string in double quotes, such as "0600", because modes are octal strings; found 0o600, an integer`},
		{"mode unreadable", secret("mode = \"0200\"\n"), "does not let the owner read"},
		{"unknown check", secret("check = \"codex-login\"\n"), `cfg.toml:5: secret "codex":`},
		{"unknown policy", secret("policy = \"keep\"\n"), `cfg.toml:5: secret "codex": unknown policy "keep"; use "replace" (default) or "consumer-rewrites"`},
		{"write_back without consumer-rewrites", secret("check = \"codex\"\nwrite_back = true\n"), `cfg.toml:6: secret "codex": write_back needs policy = "consumer-rewrites" and check = "codex"`},
		{"write_back on an undated check", secret("check = \"json\"\npolicy = \"consumer-rewrites\"\nwrite_back = true\n"), `cfg.toml:7: secret "codex": write_back needs`},
		{"write_back as a string", secret("write_back = \"yes\"\n"), `cfg.toml:5: secret.write_back must be true or false, without quotes`},
		{"renew without write_back", secret("check = \"codex\"\npolicy = \"consumer-rewrites\"\nrenew = true\n"), `cfg.toml:7: secret "codex": renew needs write_back = true`},
		{"renew from a directory", "[source]\nkind = \"dir\"\ndir = \"/srv\"\n" + secret("check = \"codex\"\npolicy = \"consumer-rewrites\"\nwrite_back = true\nrenew = true\n"), `secret "codex": renew needs source.kind = "1password"`},
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
	if p := Path(home); p != "/etc/egoagent/config.toml" {
		t.Fatalf("default = %s", p)
	}
	user := filepath.Join(home, ".config", "egoagent", "config.toml")
	os.MkdirAll(filepath.Dir(user), 0o700)
	os.WriteFile(user, nil, 0o600)
	if p := Path(home); p != user {
		t.Fatalf("with a user config = %s", p)
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

// secretAt is a configuration with one secret written to path.
func secretAt(path string) string {
	return "[[secret]]\nname = \"x\"\nref = \"op://egoengine/x/token\"\npath = \"" + path + "\"\n"
}

// egoagent's state folder and the configuration file are egoagent's own: a
// secret written over them would break the next pass.
func TestSecretPathsEgoagentOwns(t *testing.T) {
	env := Env{Home: "/home/u", StateDir: "/home/u/.local/state/egoagent"}
	const outside = "; choose a path outside it"
	for _, tc := range []struct{ path, want string }{
		{"~/.local/state/egoagent", `cfg.toml:4: secret "x": path "~/.local/state/egoagent" is egoagent's own state folder ~/.local/state/egoagent`},
		{"~/.local/state/egoagent/state.json", `cfg.toml:4: secret "x": path "~/.local/state/egoagent/state.json" is inside egoagent's own state folder ~/.local/state/egoagent`},
		{"$HOME/.local/state/egoagent/x/y", `path "$HOME/.local/state/egoagent/x/y" is inside egoagent's own state folder`},
		{"~/.local/state/egoagent/../egoagent/lock", `path "~/.local/state/egoagent/../egoagent/lock" is inside egoagent's own state folder`},
		{"/home/u/.local/state//egoagent/", `is egoagent's own state folder`},
	} {
		_, err := Parse("cfg.toml", []byte(secretAt(tc.path)), env)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), outside) {
			t.Errorf("%s: err = %v\nwant %q and %q", tc.path, err, tc.want, outside)
		}
	}
	for _, ok := range []string{"~/.local/state/egoagentX/file", "~/.local/state/other", "~/.local/state/egoagent.json", "~/.local/egoagent"} {
		if _, err := Parse("cfg.toml", []byte(secretAt(ok)), env); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	// Without a state folder (a caller that has none), there is nothing to
	// check against.
	if _, err := Parse("cfg.toml", []byte(secretAt("~/.local/state/egoagent/state.json")), Env{Home: "/home/u"}); err != nil {
		t.Errorf("no StateDir: %v", err)
	}

	// The configuration file, however it is spelled.
	self := "/home/u/.config/egoagent/config.toml"
	for _, p := range []string{self, "~/.config/egoagent/config.toml", "$HOME/.config/egoagent/../egoagent/config.toml"} {
		_, err := Parse(self, []byte(secretAt(p)), env)
		want := self + `:4: secret "x": path "` + p + `" is this configuration file, which the secret would overwrite; choose another path`
		if err == nil || err.Error() != want {
			t.Errorf("%s: err = %v\nwant %s", p, err, want)
		}
	}
	if _, err := Parse("/home/u/.config/egoagent/../egoagent/config.toml", []byte(secretAt("~/.config/egoagent/config.toml")), env); err == nil {
		t.Error("an unclean config path hides the clash")
	}
	if _, err := Parse(self, []byte(secretAt("~/.config/egoagent/other.toml")), env); err != nil {
		t.Errorf("a sibling of the config: %v", err)
	}
}

// Two mirrors of one vault whose prefixes nest would install the same
// Document twice.
func TestOverlappingMirrorsAreRefused(t *testing.T) {
	mirror := func(vault, prefix string) string {
		s := "[[mirror]]\nvault = \"" + vault + "\"\n"
		if prefix != "" {
			s += "prefix = \"" + prefix + "\"\n"
		}
		return s
	}
	checkMessages(t, []messageCase{
		{"same, by default", mirror("v", "") + mirror("v", ""), []string{`cfg.toml:3: this [[mirror]] of vault "v" repeats the one at line 1 (both with prefix "home/"); remove one of them`}},
		{"same, written", mirror("v", "dots/") + mirror("v", "dots/"), []string{`cfg.toml:6: this [[mirror]] of vault "v" repeats the one at line 1`}},
		{"inside the first", mirror("v", "") + mirror("v", "home/.ssh/"), []string{
			`cfg.toml:5: this [[mirror]] of vault "v", prefix "home/.ssh/", overlaps the one at line 1, prefix "home/": a Document titled "home/.ssh/config" would land at both ~/.ssh/config and ~/config`,
			"use prefixes where neither starts with the other"}},
		{"around the first", mirror("v", "home/a/") + mirror("v", "home/"), []string{`cfg.toml:6: this [[mirror]] of vault "v", prefix "home/", overlaps the one at line 1, prefix "home/a/"`}},
		{"third overlaps the first", mirror("v", "a/") + mirror("v", "b/") + mirror("v", "a/b/"), []string{`cfg.toml:9: this [[mirror]] of vault "v", prefix "a/b/", overlaps the one at line 1, prefix "a/"`}},
	})
	ok := mirror("v", "home/") + mirror("w", "home/") + mirror("v", "dots/") + mirror("v", "homework/")
	if _, err := Parse("cfg.toml", []byte(ok), Env{Home: "/home/u"}); err != nil {
		t.Fatal(err)
	}
}

// A negative wait says it must not be, and what to write.
func TestNegativeDurationsSayWhatToWrite(t *testing.T) {
	checkMessages(t, []messageCase{
		{"jitter", "[schedule]\njitter = \"-5m\"\n", []string{`cfg.toml:2: schedule.jitter: "-5m" must not be negative; write "10m", or "0s" for none`}},
		{"start_deadline", "[schedule]\nrefresh = \"@daily\"\nstart_deadline = \"-1s\"\n", []string{`cfg.toml:3: schedule.start_deadline: "-1s" must not be negative; write a time more than zero, such as "60s"`}},
		{"timeout", "[check]\ntimeout = \"-20s\"\n", []string{`cfg.toml:2: check.timeout: "-20s" must not be negative; write a time more than zero, such as "20s"`}},
	})
}

// A file with nothing to do points at its first line and shows a table to
// add.
func TestNothingToDoShowsATable(t *testing.T) {
	const table = `add at least one [[secret]] or [[mirror]] table, such as a line [[secret]] followed by name = "codex", ref = "op://egoengine/Codex Auth/auth.json" and path = "~/.codex/auth.json"`
	checkMessages(t, []messageCase{
		{"empty", "", []string{"cfg.toml:1: the file is empty: " + table}},
		{"blank", "\n\n  \n", []string{"cfg.toml:1: the file is empty: "}},
		{"comments only", "# egoagent\n", []string{"cfg.toml:1: nothing to do: " + table}},
		{"settings only", "[schedule]\nrefresh = \"@daily\"\n", []string{"cfg.toml:1: nothing to do: " + table}},
	})
}

func TestReadFileFolderSaysToPointAtAFile(t *testing.T) {
	dir := t.TempDir()
	_, err := readFile(dir)
	want := dir + ": is a folder, but the configuration is a file; point --config or EGOAGENT_CONFIG at the file, for example " + filepath.Join(dir, "config.toml")
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
}

func TestReadFileUnreadableSaysToMakeItReadable(t *testing.T) {
	if os.Getuid() == 0 {
		t.Skip("root reads any file")
	}
	p := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(p, []byte(good), 0o200); err != nil {
		t.Fatal(err)
	}
	_, err := readFile(p)
	for _, w := range []string{p + ": cannot read it: permission denied for ", "make it readable by this user, for example with chmod a+r " + p} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("err = %v\nwant %q", err, w)
		}
	}
}
