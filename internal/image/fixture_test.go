package image

import (
	"os"
	"path"
	"path/filepath"
	"strconv"
	"testing"
)

// fixture is an image tree built in a temporary folder: the layout the
// Nix image produces, with store paths under <root>/nix/store and absolute
// symlinks that only make sense inside the image.
type fixture struct {
	t    *testing.T
	root string
	uid  int
	gid  int
	env  map[string]string
}

const (
	fxProfile   = "/nix/store/1111-home-manager-path"
	fxHomeFiles = "/nix/store/2222-home-manager-files"
	fxLocales   = "/nix/store/3333-glibc-locales/lib/locale/locale-archive"
	fxSystem    = "/nix/store/4444-egoengine-system"
)

// newFixture builds an image tree that keeps every promise, for a user with
// the test process's own ids (so that the home's owner can be right without
// root).
func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, root: t.TempDir(), uid: os.Getuid(), gid: os.Getgid()}
	f.writeFile("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"+
		User+":x:"+strconv.Itoa(f.uid)+":"+strconv.Itoa(f.gid)+"::"+Home+":/bin/zsh\n")
	f.writeFile("/etc/group", "root:x:0:\n"+User+":x:"+strconv.Itoa(f.gid)+":\n")
	f.mkdir(Home)
	f.mkdir("/tmp")
	f.chmod("/tmp", os.ModeSticky|0o777)

	// System tools, linked from /bin and /usr/bin into the store.
	for _, tool := range []string{"sh", "env", "zsh", "curl", "egoagent", "egoagent-op"} {
		f.executable(fxSystem + "/bin/" + tool)
		f.symlink("/bin/"+tool, fxSystem+"/bin/"+tool)
	}
	f.symlink("/usr/bin/env", fxSystem+"/bin/env")

	// The Home Manager profile, reached through ~/.nix-profile.
	for _, tool := range []string{"git", "nvim", "op", "direnv", "starship", "codex"} {
		f.executable(fxProfile + "/bin/" + tool)
	}
	f.symlink(Home+"/.nix-profile", fxProfile)
	f.mkdir(fxHomeFiles)
	f.symlink(HomeFilesLink, fxHomeFiles)
	f.symlink(HomePathLink, fxProfile)

	f.writeFile("/etc/ssl/certs/ca-certificates.crt", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
	f.writeFile(fxLocales, "locale archive")
	data, err := os.ReadFile(filepath.Join("testdata", "image-config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	f.writeFile(ConfigPath, string(data))

	f.env = map[string]string{
		"PATH":           Home + "/.nix-profile/bin:/bin:/usr/bin",
		"LANG":           "en_US.UTF-8",
		"LOCALE_ARCHIVE": fxLocales,
	}
	return f
}

func (f *fixture) host(p string) string { return filepath.Join(f.root, filepath.FromSlash(p)) }

func (f *fixture) mkdir(p string) {
	f.t.Helper()
	if err := os.MkdirAll(f.host(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) chmod(p string, m os.FileMode) {
	f.t.Helper()
	if err := os.Chmod(f.host(p), m); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) writeFile(p, content string) {
	f.t.Helper()
	f.mkdir(path.Dir(p))
	if err := os.WriteFile(f.host(p), []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) executable(p string) {
	f.t.Helper()
	f.writeFile(p, "#!/bin/sh\n")
	f.chmod(p, 0o755)
}

// symlink makes p a link whose target is written as given: an absolute
// target is an in-image path, not a host path.
func (f *fixture) symlink(p, target string) {
	f.t.Helper()
	f.mkdir(path.Dir(p))
	if err := os.Symlink(target, f.host(p)); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) remove(p string) {
	f.t.Helper()
	if err := os.RemoveAll(f.host(p)); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) options() Options {
	o := DefaultOptions()
	o.Root = f.root
	o.UID, o.GID = f.uid, f.gid
	o.Getenv = func(k string) string { return f.env[k] }
	return o
}

func (f *fixture) linkOptions() LinkOptions {
	o := DefaultLinkOptions()
	o.Root = f.root
	return o
}

func (f *fixture) readlink(p string) string {
	f.t.Helper()
	target, err := os.Readlink(f.host(p))
	if err != nil {
		f.t.Fatal(err)
	}
	return target
}
