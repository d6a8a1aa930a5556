package image

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
)

func verify(t *testing.T, o Options) Report {
	t.Helper()
	rep, err := Verify(o)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return rep
}

// failed returns the details of the checks that failed, by name.
func failed(rep Report) map[string]string {
	out := map[string]string{}
	for _, c := range rep.Failed() {
		out[c.Name] = c.Detail
	}
	return out
}

func TestVerifyGoodImagePasses(t *testing.T) {
	f := newFixture(t)
	rep := verify(t, f.options())
	if !rep.OK() {
		var b bytes.Buffer
		_ = rep.Write(&b)
		t.Fatalf("a good image failed:\n%s", b.String())
	}
	// Every promise is a check of its own: the user, the group, the home,
	// the shell, /tmp, env, sh, certificates, locale, PATH, each tool, the
	// home files and the config.
	if want := 10 + len(Tools) + 2; len(rep.Checks) != want {
		t.Errorf("ran %d checks, want %d", len(rep.Checks), want)
	}
	var b bytes.Buffer
	if err := rep.Write(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "all 22 checks passed") {
		t.Errorf("summary line missing:\n%s", b.String())
	}
}

func TestVerifyMissingUser(t *testing.T) {
	f := newFixture(t)
	f.writeFile("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")
	f.writeFile("/etc/group", "root:x:0:\n")
	got := failed(verify(t, f.options()))
	if !strings.Contains(got["user"], "no joshsymonds line in /etc/passwd") {
		t.Errorf("user check: %q", got["user"])
	}
	if !strings.Contains(got["group"], "no joshsymonds group") {
		t.Errorf("group check: %q", got["group"])
	}
	if _, ok := got["login shell"]; !ok {
		t.Error("login shell passed without a passwd entry")
	}
}

func TestVerifyWrongIDsInPasswd(t *testing.T) {
	f := newFixture(t)
	f.writeFile("/etc/passwd", User+":x:4242:4343::/root:/bin/zsh\n")
	got := failed(verify(t, f.options()))
	for _, want := range []string{"uid is 4242", "gid is 4343", `home is "/root"`} {
		if !strings.Contains(got["user"], want) {
			t.Errorf("user check %q does not say %q", got["user"], want)
		}
	}
}

func TestVerifyWrongOwner(t *testing.T) {
	f := newFixture(t)
	// The image promises a uid other than the one that owns the home.
	f.uid++
	f.writeFile("/etc/passwd", User+":x:"+itoa(f.uid)+":"+itoa(f.gid)+"::"+Home+":/bin/zsh\n")
	got := failed(verify(t, f.options()))
	if len(got) != 1 || !strings.Contains(got["home"], "is owned by") {
		t.Fatalf("want only the home check to fail for its owner, got %v", got)
	}
}

func TestVerifyAsRootChecksTheImageIDs(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to chown the fixture home to 1000:1000 (CI runs as root)")
	}
	f := newFixture(t)
	f.uid, f.gid = UID, GID
	f.writeFile("/etc/passwd", User+":x:1000:1000::"+Home+":/bin/zsh\n")
	f.writeFile("/etc/group", User+":x:1000:\n")
	o := f.options()
	if got := failed(verify(t, o)); !strings.Contains(got["home"], "owned by 0:0, want 1000:1000") {
		t.Fatalf("root-owned home: %v", got)
	}
	if err := os.Chown(f.host(Home), UID, GID); err != nil {
		t.Fatal(err)
	}
	if got := failed(verify(t, o)); len(got) != 0 {
		t.Fatalf("home chowned to 1000:1000 still fails: %v", got)
	}
}

func TestVerifyTmpNotSticky(t *testing.T) {
	f := newFixture(t)
	f.chmod("/tmp", 0o777)
	got := failed(verify(t, f.options()))
	if len(got) != 1 || !strings.Contains(got["/tmp"], "mode is 0777, want 1777") {
		t.Fatalf("want only /tmp to fail, got %v", got)
	}
}

func TestVerifyMissingTmp(t *testing.T) {
	f := newFixture(t)
	f.remove("/tmp")
	if got := failed(verify(t, f.options())); !strings.Contains(got["/tmp"], "no such file") {
		t.Fatalf("missing /tmp: %v", got)
	}
}

func TestVerifyShellNotExecutable(t *testing.T) {
	f := newFixture(t)
	f.chmod(fxSystem+"/bin/zsh", 0o644)
	got := failed(verify(t, f.options()))
	if !strings.Contains(got["login shell"], "not executable") {
		t.Errorf("login shell: %q", got["login shell"])
	}
	if !strings.Contains(got["tool zsh"], "not executable") {
		t.Errorf("tool zsh: %q", got["tool zsh"])
	}
}

func TestVerifyLinksResolveInsideTheRoot(t *testing.T) {
	f := newFixture(t)
	// A dangling store link: the host's own /bin/sh must not stand in for it.
	f.remove(fxSystem + "/bin/sh")
	got := failed(verify(t, f.options()))
	if !strings.Contains(got["/bin/sh"], "no such file") {
		t.Fatalf("/bin/sh with a dangling link: %v", got)
	}
}

func TestVerifyMissingTool(t *testing.T) {
	f := newFixture(t)
	f.remove(fxProfile + "/bin/nvim")
	got := failed(verify(t, f.options()))
	if len(got) != 1 || !strings.Contains(got["tool nvim"], "not found on PATH") {
		t.Fatalf("want only nvim to fail, got %v", got)
	}
}

func TestVerifyPathWithoutProfile(t *testing.T) {
	f := newFixture(t)
	f.env["PATH"] = "/bin:/usr/bin"
	got := failed(verify(t, f.options()))
	if !strings.Contains(got["PATH"], "does not include /home/joshsymonds/.nix-profile/bin") {
		t.Errorf("PATH: %q", got["PATH"])
	}
	if _, ok := got["tool git"]; !ok {
		t.Error("git found without the profile on PATH")
	}
}

func TestVerifyStaleProfileLink(t *testing.T) {
	f := newFixture(t)
	f.remove(Home + "/.nix-profile")
	f.symlink(Home+"/.nix-profile", "/nix/store/0000-home-manager-path")
	got := failed(verify(t, f.options()))
	if !strings.Contains(got["PATH"], "image link-home") {
		t.Errorf("PATH with a stale profile: %q", got["PATH"])
	}
}

func TestVerifyLocaleAndCertificates(t *testing.T) {
	f := newFixture(t)
	f.env["LANG"] = "POSIX"
	f.remove("/etc/ssl")
	got := failed(verify(t, f.options()))
	if !strings.Contains(got["locale"], "want a UTF-8 locale") {
		t.Errorf("locale: %q", got["locale"])
	}
	if !strings.Contains(got["CA certificates"], "no certificate bundle") {
		t.Errorf("CA certificates: %q", got["CA certificates"])
	}

	f = newFixture(t)
	f.env["LOCALE_ARCHIVE"] = "/nix/store/gone/locale-archive"
	if got := failed(verify(t, f.options())); !strings.Contains(got["locale"], "does not name a file") {
		t.Errorf("locale with a missing archive: %v", got)
	}
	f.env["LANG"] = "C.UTF-8"
	delete(f.env, "LOCALE_ARCHIVE")
	if got := failed(verify(t, f.options())); len(got) != 0 {
		t.Errorf("C.UTF-8 without an archive: %v", got)
	}
}

func TestVerifyConfig(t *testing.T) {
	f := newFixture(t)
	f.writeFile(ConfigPath, "[source]\nkind = \"1password\"\ncolour = \"blue\"\n")
	got := failed(verify(t, f.options()))
	if !strings.Contains(got["egoagent config"], ConfigPath) || !strings.Contains(got["egoagent config"], "colour") {
		t.Errorf("config with an unknown key: %q", got["egoagent config"])
	}

	f.writeFile(ConfigPath, "[source]\nkind = \"1password\"\n")
	if got := failed(verify(t, f.options())); !strings.Contains(got["egoagent config"], "[[secret]]") {
		t.Errorf("config without secrets: %v", got)
	}

	f.remove("/etc/egoagent")
	if got := failed(verify(t, f.options())); !strings.Contains(got["egoagent config"], "no such file") {
		t.Errorf("missing config: %v", got)
	}
}

func TestVerifyMissingHomeFiles(t *testing.T) {
	f := newFixture(t)
	f.remove(fxHomeFiles)
	if got := failed(verify(t, f.options())); len(got) != 1 || got["home files"] == "" {
		t.Fatalf("want only home files to fail, got %v", got)
	}
}

func TestVerifyReportNamesFailures(t *testing.T) {
	f := newFixture(t)
	f.chmod("/tmp", 0o755)
	var b bytes.Buffer
	if err := verify(t, f.options()).Write(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.Contains(out, "FAIL  /tmp") || !strings.Contains(out, "1 of 22 checks failed") {
		t.Errorf("report:\n%s", out)
	}
}

func TestVerifyBadRoot(t *testing.T) {
	o := DefaultOptions()
	o.Root = "/nonexistent/egoengine-root"
	if _, err := Verify(o); err == nil {
		t.Fatal("Verify accepted a root that does not exist")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// A stand-in image names the promises it cannot keep: those checks are
// waived and said to be, a passing one it names is marked, and every other
// check still fails as for the real image.
func TestVerifyStandInList(t *testing.T) {
	f := newFixture(t)
	f.remove(fxProfile + "/bin/op")
	f.writeFile(StandInList, "# a stand-in\ntool op\tnot packaged here\nhome files\ta small stand-in generation\n")
	rep := verify(t, f.options())
	var b bytes.Buffer
	_ = rep.Write(&b)
	out := b.String()
	if !rep.OK() || !rep.StandIn {
		t.Fatalf("a stand-in naming its missing tool: OK %v, StandIn %v:\n%s", rep.OK(), rep.StandIn, out)
	}
	for _, want := range []string{
		"skip  tool op",
		"not kept by this stand-in image: not packaged here",
		"[stand-in: a small stand-in generation]",
		"not the egoengine image: 1 promises not kept (tool op), 1 kept only by a stand-in (home files)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q:\n%s", want, out)
		}
	}

	// What the list does not name still fails.
	f.remove(fxProfile + "/bin/git")
	if got := failed(verify(t, f.options())); len(got) != 1 || got["tool git"] == "" {
		t.Errorf("a stand-in missing an unnamed tool: failed %v, want tool git alone", got)
	}

	// A name that is no check is an error, not a silent no-op.
	f.executable(fxProfile + "/bin/git")
	f.writeFile(StandInList, "tool opp\ttypo\n")
	if got := failed(verify(t, f.options())); !strings.Contains(got["stand-in list"], `"tool opp" is no check`) {
		t.Errorf("a list naming no check: failed %v", got)
	}
}
