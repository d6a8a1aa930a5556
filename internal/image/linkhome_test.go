package image

import (
	"bytes"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
)

const (
	fxOldFiles   = "/nix/store/0000-home-manager-files"
	fxOldProfile = "/nix/store/0000-home-manager-path"
)

// upgraded builds an image whose home volume was seeded by an older image:
// the home's links point into that image's store paths, which are gone.
// The new image's home-files hold .zshrc, .config/git/config and a linked
// folder .config/nvim.
func upgraded(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t)
	f.writeFile("/nix/store/5555-zshrc", "# zshrc\n")
	f.writeFile("/nix/store/6666-gitconfig", "[user]\n")
	f.writeFile("/nix/store/7777-nvim-config/init.lua", "-- nvim\n")
	f.symlink(fxHomeFiles+"/.zshrc", "/nix/store/5555-zshrc")
	f.symlink(fxHomeFiles+"/.config/git/config", "/nix/store/6666-gitconfig")
	f.symlink(fxHomeFiles+"/.config/nvim", "/nix/store/7777-nvim-config")

	// What the old image left in the volume.
	f.remove(Home + "/.nix-profile")
	f.symlink(Home+"/.nix-profile", fxOldProfile)
	f.symlink(Home+"/.zshrc", fxOldFiles+"/.zshrc")
	f.symlink(Home+"/.config/git/config", fxOldFiles+"/.config/git/config")
	f.symlink(Home+"/.config/old-tool/rc", fxOldFiles+"/.config/old-tool/rc")
	f.symlink(Home+"/.oldrc", fxOldFiles+"/.oldrc")
	return f
}

// userFiles adds things of the user's that LinkHome must never touch, and
// returns a function that checks they are as they were.
func userFiles(f *fixture) func() {
	f.writeFile(Home+"/notes.txt", "mine\n")
	f.writeFile(Home+"/.config/app/settings.json", "{}\n")
	f.symlink(Home+"/.bashrc", Home+"/dotfiles/bashrc")               // a link elsewhere
	f.symlink(Home+"/dangling", "/nowhere/at/all")                    // a dangling link, not into the store
	f.symlink(Home+"/src/project/result", "/nix/store/8888-my-build") // a gone store path that is not Home Manager's
	return func() {
		f.t.Helper()
		for p, want := range map[string]string{Home + "/notes.txt": "mine\n", Home + "/.config/app/settings.json": "{}\n"} {
			got, err := os.ReadFile(f.host(p))
			if err != nil || string(got) != want {
				f.t.Errorf("%s: got %q, %v; want %q untouched", p, got, err, want)
			}
		}
		for p, want := range map[string]string{
			Home + "/.bashrc":            Home + "/dotfiles/bashrc",
			Home + "/dangling":           "/nowhere/at/all",
			Home + "/src/project/result": "/nix/store/8888-my-build",
		} {
			if got := f.readlink(p); got != want {
				f.t.Errorf("%s now points at %s, want %s untouched", p, got, want)
			}
		}
	}
}

func linkHome(t *testing.T, o LinkOptions) LinkResult {
	t.Helper()
	res, err := LinkHome(o)
	if err != nil {
		t.Fatalf("LinkHome: %v", err)
	}
	return res
}

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}

func TestLinkHomeAfterUpgrade(t *testing.T) {
	f := upgraded(t)
	untouched := userFiles(f)

	res := linkHome(t, f.linkOptions())
	if len(res.Conflicts) != 0 {
		t.Fatalf("conflicts: %+v", res.Conflicts)
	}
	wantLinks := map[string]string{
		".zshrc":             fxHomeFiles + "/.zshrc",
		".config/git/config": fxHomeFiles + "/.config/git/config",
		".config/nvim":       fxHomeFiles + "/.config/nvim",
		".nix-profile":       fxProfile,
	}
	for rel, want := range wantLinks {
		if got := f.readlink(Home + "/" + rel); got != want {
			t.Errorf("~/%s -> %s, want %s", rel, got, want)
		}
	}
	if got, want := sorted(res.Linked), []string{".config/git/config", ".config/nvim", ".nix-profile", ".zshrc"}; !reflect.DeepEqual(got, want) {
		t.Errorf("linked %v, want %v", got, want)
	}
	if got, want := sorted(res.Removed), []string{".config/old-tool/rc", ".oldrc"}; !reflect.DeepEqual(got, want) {
		t.Errorf("removed %v, want %v", got, want)
	}
	for _, rel := range []string{".oldrc", ".config/old-tool/rc"} {
		if _, err := os.Lstat(f.host(Home + "/" + rel)); !os.IsNotExist(err) {
			t.Errorf("stale ~/%s still there (%v)", rel, err)
		}
	}
	untouched()

	// The home now keeps the image's promises.
	if got := failed(verify(t, f.options())); len(got) != 0 {
		t.Errorf("verify after link-home: %v", got)
	}
	// Files are reachable through the new links, inside the image.
	r, _ := newRoot(f.root)
	if _, fi, err := r.stat(Home + "/.config/nvim/init.lua"); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("~/.config/nvim/init.lua through the links: %v", err)
	}
}

func TestLinkHomeIsIdempotent(t *testing.T) {
	f := upgraded(t)
	untouched := userFiles(f)
	first := linkHome(t, f.linkOptions())
	second := linkHome(t, f.linkOptions())
	if len(second.Linked) != 0 || len(second.Removed) != 0 || len(second.Conflicts) != 0 {
		t.Errorf("second run changed things: %+v", second)
	}
	if second.Unchanged != len(first.Linked) {
		t.Errorf("second run: %d unchanged, want %d", second.Unchanged, len(first.Linked))
	}
	untouched()
}

func TestLinkHomeLeavesConflictsAlone(t *testing.T) {
	f := upgraded(t)
	// The user replaced .zshrc by a file of their own and pointed git's
	// config at their dotfiles.
	f.remove(Home + "/.zshrc")
	f.writeFile(Home+"/.zshrc", "my own zshrc\n")
	f.remove(Home + "/.config/git/config")
	f.symlink(Home+"/.config/git/config", Home+"/dotfiles/gitconfig")

	res := linkHome(t, f.linkOptions())
	if res.OK() {
		t.Fatal("OK with two conflicts")
	}
	got := map[string]string{}
	for _, c := range res.Conflicts {
		got[c.Path] = c.Reason
	}
	if !strings.Contains(got[".zshrc"], "a file of yours") {
		t.Errorf(".zshrc conflict: %q", got[".zshrc"])
	}
	if !strings.Contains(got[".config/git/config"], "a link of yours to "+Home+"/dotfiles/gitconfig") {
		t.Errorf("git config conflict: %q", got[".config/git/config"])
	}
	if data, _ := os.ReadFile(f.host(Home + "/.zshrc")); string(data) != "my own zshrc\n" {
		t.Errorf("user's .zshrc changed to %q", data)
	}
	if target := f.readlink(Home + "/.config/git/config"); target != Home+"/dotfiles/gitconfig" {
		t.Errorf("user's git config link changed to %s", target)
	}
	// The rest is still linked.
	if target := f.readlink(Home + "/.config/nvim"); target != fxHomeFiles+"/.config/nvim" {
		t.Errorf("~/.config/nvim -> %s", target)
	}

	var b bytes.Buffer
	if err := res.Write(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "conflict  ~/.zshrc") || !strings.Contains(b.String(), "2 conflicts") {
		t.Errorf("report:\n%s", b.String())
	}
}

func TestLinkHomeReplacesStaleParentLink(t *testing.T) {
	f := newFixture(t)
	f.writeFile("/nix/store/6666-gitconfig", "[user]\n")
	f.symlink(fxHomeFiles+"/.config/git/config", "/nix/store/6666-gitconfig")
	// The old image linked the whole of ~/.config/git as one folder.
	f.symlink(Home+"/.config/git", fxOldFiles+"/.config/git")

	res := linkHome(t, f.linkOptions())
	if !res.OK() {
		t.Fatalf("conflicts: %+v", res.Conflicts)
	}
	fi, err := os.Lstat(f.host(Home + "/.config/git"))
	if err != nil || !fi.IsDir() {
		t.Fatalf("~/.config/git is not a folder now: %v", err)
	}
	if target := f.readlink(Home + "/.config/git/config"); target != fxHomeFiles+"/.config/git/config" {
		t.Errorf("~/.config/git/config -> %s", target)
	}
	if !reflect.DeepEqual(res.Removed, []string{".config/git"}) {
		t.Errorf("removed %v", res.Removed)
	}
}

func TestLinkHomeFileInTheWayOfAFolder(t *testing.T) {
	f := newFixture(t)
	f.writeFile("/nix/store/6666-gitconfig", "[user]\n")
	f.symlink(fxHomeFiles+"/.config/git/config", "/nix/store/6666-gitconfig")
	f.writeFile(Home+"/.config", "not a folder\n")

	res := linkHome(t, f.linkOptions())
	if len(res.Conflicts) != 1 || !strings.Contains(res.Conflicts[0].Reason, "~/.config is in the way") {
		t.Fatalf("conflicts: %+v", res.Conflicts)
	}
	if data, _ := os.ReadFile(f.host(Home + "/.config")); string(data) != "not a folder\n" {
		t.Errorf("user's ~/.config changed to %q", data)
	}
}

func TestLinkHomeKeepsLiveOldLinksOutOfStoreGenerations(t *testing.T) {
	f := newFixture(t)
	// A link into an old generation that is still in the store is not
	// stale: only dangling ones go.
	f.writeFile(fxOldFiles+"/.kept", "still here\n")
	f.symlink(Home+"/.kept", fxOldFiles+"/.kept")
	res := linkHome(t, f.linkOptions())
	if len(res.Removed) != 0 {
		t.Errorf("removed %v", res.Removed)
	}
	if target := f.readlink(Home + "/.kept"); target != fxOldFiles+"/.kept" {
		t.Errorf("~/.kept -> %s", target)
	}
}

func TestLinkHomeErrors(t *testing.T) {
	f := newFixture(t)
	o := f.linkOptions()
	o.HomeFiles = "/etc/egoengine/missing"
	if _, err := LinkHome(o); err == nil || !strings.Contains(err.Error(), "home files") {
		t.Errorf("missing home files: %v", err)
	}
	o = f.linkOptions()
	o.Home = "/home/nobody"
	if _, err := LinkHome(o); err == nil || !strings.Contains(err.Error(), "home") {
		t.Errorf("missing home: %v", err)
	}
}

func TestLinkHomeDoesNotClobberTempNames(t *testing.T) {
	f := upgraded(t)
	// A file with the name a careless temporary link might use.
	name := Home + "/.zshrc.egoagent-" + itoa(os.Getpid()) + "-0"
	f.writeFile(name, "mine\n")
	linkHome(t, f.linkOptions())
	if data, err := os.ReadFile(f.host(name)); err != nil || string(data) != "mine\n" {
		t.Errorf("%s: %q, %v", name, data, err)
	}
	if target := f.readlink(Home + "/.zshrc"); target != fxHomeFiles+"/.zshrc" {
		t.Errorf("~/.zshrc -> %s", target)
	}
}

// Paths come from the home volume: a file name cannot forge a line of the
// report or send an escape sequence.
func TestLinkResultIsPrintable(t *testing.T) {
	r := LinkResult{
		Linked:    []string{"x\nimage link-home: 0 linked, 0 unchanged, 0 removed, 0 conflicts"},
		Removed:   []string{"\x1b]0;pwned\x07"},
		Conflicts: []Conflict{{Path: "c\u202e", Reason: "a file\nok"}},
		Skipped:   []string{"s\r"},
	}
	var b strings.Builder
	if err := r.Write(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if n := strings.Count(out, "\n"); n != 5 {
		t.Fatalf("%d lines:\n%s", n, out)
	}
	if strings.ContainsAny(out, "\x1b\x07\r\u202e") || strings.Count(out, "image link-home:") != 2 {
		t.Fatalf("raw control characters or a forged line:\n%q", out)
	}
}
