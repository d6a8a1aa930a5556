package image

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"

	"github.com/veraticus/egoengine/internal/health/printable"
	"github.com/veraticus/egoengine/internal/secrets/config"
)

// Options says what Verify expects to find. DefaultOptions gives the image's
// promises; tests change the root, the ids or the environment.
type Options struct {
	Root   string              // filesystem prefix the image is mounted at ("/" in a container)
	User   string              // workspace user name
	UID    int                 // its user id
	GID    int                 // its group id
	Home   string              // its home, as the image sees it
	Tools  []string            // commands that must be on PATH
	Getenv func(string) string // the container's environment (PATH, LANG, ...)
}

// DefaultOptions returns the image's promises, checked against the running
// process's environment and the real root.
func DefaultOptions() Options {
	return Options{
		Root:   "/",
		User:   User,
		UID:    UID,
		GID:    GID,
		Home:   Home,
		Tools:  append([]string(nil), Tools...),
		Getenv: os.Getenv,
	}
}

// Check is the outcome of one promise.
type Check struct {
	Name   string // what was checked, e.g. "/tmp" or "tool git"
	OK     bool   // whether the promise holds (or a stand-in image waives it)
	Detail string // what was found; on failure, what is wrong and what to do
	// StandIn is set when the image is a stand-in (StandInList) that names
	// this check: why it cannot keep this promise as the real image does.
	// Waived is true when the check failed and that list waived it.
	StandIn string
	Waived  bool
}

// Report is every check Verify ran, in order.
type Report struct {
	Checks []Check
	// StandIn is true when the image declares itself a stand-in
	// (StandInList): not the egoengine image, for tests only.
	StandIn bool
}

// OK says whether every check passed.
func (r Report) OK() bool {
	return len(r.Failed()) == 0
}

// Failed returns the checks that did not pass.
func (r Report) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c)
		}
	}
	return out
}

// Write prints the report, one line per check, then a summary line.
func (r Report) Write(w io.Writer) error {
	width := 0
	for _, c := range r.Checks {
		width = max(width, len(c.Name))
	}
	var b bytes.Buffer
	var waived, standIn []string
	for _, c := range r.Checks {
		mark := "ok  "
		detail := c.Detail
		switch {
		case !c.OK:
			mark = "FAIL"
		case c.Waived:
			mark = "skip"
			detail = "not kept by this stand-in image: " + c.StandIn + " (" + c.Detail + ")"
			waived = append(waived, c.Name)
		case c.StandIn != "":
			detail += " [stand-in: " + c.StandIn + "]"
			standIn = append(standIn, c.Name)
		}
		fmt.Fprintf(&b, "%s  %-*s  %s\n", mark, width, c.Name, printable.Text(detail)) // details quote files of the image
	}
	if failed := len(r.Failed()); failed > 0 {
		fmt.Fprintf(&b, "image verify: %d of %d checks failed\n", failed, len(r.Checks))
	} else {
		fmt.Fprintf(&b, "image verify: all %d checks passed\n", len(r.Checks))
	}
	if r.StandIn {
		fmt.Fprintf(&b, "image verify: a stand-in image (%s), not the egoengine image: %d promises not kept (%s), %d kept only by a stand-in (%s)\n",
			StandInList, len(waived), strings.Join(waived, ", "), len(standIn), strings.Join(standIn, ", "))
	}
	_, err := w.Write(b.Bytes())
	return err
}

// verifier carries the state the checks share: the root and what
// /etc/passwd said about the user.
type verifier struct {
	o      Options
	r      root
	shell  string // login shell from /etc/passwd, "" if the user is missing
	checks []Check
}

func (v *verifier) pass(name, format string, args ...any) {
	v.checks = append(v.checks, Check{Name: name, OK: true, Detail: fmt.Sprintf(format, args...)})
}

func (v *verifier) fail(name, format string, args ...any) {
	v.checks = append(v.checks, Check{Name: name, OK: false, Detail: fmt.Sprintf(format, args...)})
}

// Verify checks every promise of the image under o.Root and reports each.
// It returns an error only when the root itself cannot be used.
func Verify(o Options) (Report, error) {
	r, err := newRoot(o.Root)
	if err != nil {
		return Report{}, err
	}
	if o.Getenv == nil {
		o.Getenv = func(string) string { return "" }
	}
	v := &verifier{o: o, r: r}
	v.user()
	v.group()
	v.home()
	v.loginShell()
	v.tmp()
	v.executable("/usr/bin/env", "the Coder agent's scripts start with #!/usr/bin/env")
	v.executable("/bin/sh", "Coder runs its init script with /bin/sh")
	v.caCertificates()
	v.locale()
	profileBin := v.pathHasProfile()
	for _, t := range o.Tools {
		v.tool(t, profileBin)
	}
	v.homeFiles()
	v.egoagentConfig()
	standIn := v.standIn()
	return Report{Checks: v.checks, StandIn: standIn}, nil
}

// standIn applies StandInList, when the image has one: a test image that
// cannot keep every promise says which, one line each, "check name<TAB>why".
// A named check that failed is waived and reported as such; one that passed
// is reported as kept only by a stand-in. A name that is no check fails, so
// that the list cannot silently waive nothing. The real image has no list.
func (v *verifier) standIn() bool {
	real, fi, err := v.r.stat(StandInList)
	if err != nil {
		return false
	}
	const name = "stand-in list"
	if !fi.Mode().IsRegular() {
		v.fail(name, "%s is not a file", real)
		return true
	}
	data, err := os.ReadFile(v.r.host(real))
	if err != nil {
		v.fail(name, "cannot read %s: %v", StandInList, unwrapPathError(err))
		return true
	}
	n := 0
	for i, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		check, why, ok := strings.Cut(line, "\t")
		why = strings.TrimSpace(why)
		if !ok || why == "" {
			v.fail(name, "%s:%d: want \"check name<TAB>why\"", StandInList, i+1)
			continue
		}
		found := false
		for j := range v.checks {
			c := &v.checks[j]
			if c.Name != check || c.StandIn != "" {
				continue
			}
			found = true
			c.StandIn = why
			if !c.OK {
				c.OK, c.Waived = true, true
			}
		}
		if !found {
			v.fail(name, "%s:%d: %q is no check of image verify", StandInList, i+1, check)
			continue
		}
		n++
	}
	v.pass(name, "%s: a stand-in image for tests, %d promises named", StandInList, n)
	return true
}

// findEntry returns the colon-separated fields of the line for name in an
// /etc/passwd or /etc/group file, or nil if there is none.
func findEntry(data []byte, name string) []string {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) > 0 && f[0] == name {
			return f
		}
	}
	return nil
}

func (v *verifier) user() {
	const name = "user"
	data, err := os.ReadFile(v.r.host("/etc/passwd"))
	if err != nil {
		v.fail(name, "cannot read /etc/passwd: %v; the image needs one (dockerTools.fakeNss)", unwrapPathError(err))
		return
	}
	f := findEntry(data, v.o.User)
	if f == nil {
		v.fail(name, "no %s line in /etc/passwd; add it (fakeNss extraPasswdLines)", v.o.User)
		return
	}
	if len(f) != 7 {
		v.fail(name, "the %s line in /etc/passwd has %d fields, want 7 (name:x:uid:gid:gecos:home:shell)", v.o.User, len(f))
		return
	}
	var problems []string
	if f[2] != strconv.Itoa(v.o.UID) {
		problems = append(problems, fmt.Sprintf("uid is %s, want %d", f[2], v.o.UID))
	}
	if f[3] != strconv.Itoa(v.o.GID) {
		problems = append(problems, fmt.Sprintf("gid is %s, want %d", f[3], v.o.GID))
	}
	if f[5] != v.o.Home {
		problems = append(problems, fmt.Sprintf("home is %q, want %q", f[5], v.o.Home))
	}
	v.shell = f[6]
	if len(problems) > 0 {
		v.fail(name, "/etc/passwd: %s: %s", v.o.User, strings.Join(problems, "; "))
		return
	}
	v.pass(name, "%s is %d:%d with home %s in /etc/passwd", v.o.User, v.o.UID, v.o.GID, v.o.Home)
}

func (v *verifier) group() {
	const name = "group"
	data, err := os.ReadFile(v.r.host("/etc/group"))
	if err != nil {
		v.fail(name, "cannot read /etc/group: %v; the image needs one (dockerTools.fakeNss)", unwrapPathError(err))
		return
	}
	f := findEntry(data, v.o.User)
	if f == nil {
		v.fail(name, "no %s group in /etc/group; add %s:x:%d: (fakeNss extraGroupLines)", v.o.User, v.o.User, v.o.GID)
		return
	}
	if len(f) < 3 || f[2] != strconv.Itoa(v.o.GID) {
		got := "missing"
		if len(f) >= 3 {
			got = f[2]
		}
		v.fail(name, "/etc/group: group %s has gid %s, want %d", v.o.User, got, v.o.GID)
		return
	}
	v.pass(name, "group %s is %d in /etc/group", v.o.User, v.o.GID)
}

func (v *verifier) home() {
	const name = "home"
	real, fi, err := v.r.stat(v.o.Home)
	if err != nil {
		v.fail(name, "%v; the image must create the home", err)
		return
	}
	if !fi.IsDir() {
		v.fail(name, "%s is not a folder", real)
		return
	}
	uid, gid, ok := owner(fi)
	if !ok {
		v.fail(name, "cannot read the owner of %s", real)
		return
	}
	if uid != v.o.UID || gid != v.o.GID {
		v.fail(name, "%s is owned by %d:%d, want %d:%d; chown it in the image build (fakeRootCommands)", v.o.Home, uid, gid, v.o.UID, v.o.GID)
		return
	}
	v.pass(name, "%s is a folder owned by %d:%d", v.o.Home, uid, gid)
}

func owner(fi fs.FileInfo) (uid, gid int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), int(st.Gid), true
}

func (v *verifier) loginShell() {
	const name = "login shell"
	if v.shell == "" {
		v.fail(name, "unknown: the user has no /etc/passwd entry with a shell")
		return
	}
	if err := v.isExecutable(v.shell); err != nil {
		v.fail(name, "%s (from /etc/passwd): %v", v.shell, err)
		return
	}
	v.pass(name, "%s is executable", v.shell)
}

// isExecutable resolves p in the root and checks that it is an executable file.
func (v *verifier) isExecutable(p string) error {
	real, fi, err := v.r.stat(p)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", real)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not executable (mode %04o)", real, fi.Mode().Perm())
	}
	return nil
}

func (v *verifier) tmp() {
	const name = "/tmp"
	real, fi, err := v.r.stat("/tmp")
	if err != nil {
		v.fail(name, "%v; create it with mode 1777 (the Coder agent bootstrap runs mktemp)", err)
		return
	}
	if !fi.IsDir() {
		v.fail(name, "%s is not a folder", real)
		return
	}
	if fi.Mode()&fs.ModeSticky == 0 || fi.Mode().Perm() != 0o777 {
		v.fail(name, "mode is %s, want 1777 (sticky, writable by all); chmod 1777 /tmp in the image build", modeString(fi.Mode()))
		return
	}
	v.pass(name, "mode 1777")
}

func modeString(m fs.FileMode) string {
	n := uint32(m.Perm())
	if m&fs.ModeSticky != 0 {
		n |= 0o1000
	}
	if m&fs.ModeSetgid != 0 {
		n |= 0o2000
	}
	if m&fs.ModeSetuid != 0 {
		n |= 0o4000
	}
	return fmt.Sprintf("%04o", n)
}

func (v *verifier) executable(p, why string) {
	if err := v.isExecutable(p); err != nil {
		v.fail(p, "%v; needed because %s", err, why)
		return
	}
	v.pass(p, "executable")
}

// certFiles are where TLS clients look for the CA bundle.
var certFiles = []string{"/etc/ssl/certs/ca-certificates.crt", "/etc/ssl/certs/ca-bundle.crt", "/etc/pki/tls/certs/ca-bundle.crt"}

func (v *verifier) caCertificates() {
	const name = "CA certificates"
	candidates := certFiles
	if f := v.o.Getenv("SSL_CERT_FILE"); f != "" {
		// A set SSL_CERT_FILE is what clients will use: it must be right.
		candidates = []string{f}
	}
	for _, f := range candidates {
		real, fi, err := v.r.stat(f)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(v.r.host(real))
		if err != nil {
			continue
		}
		if n := bytes.Count(data, []byte("-----BEGIN CERTIFICATE-----")); n > 0 {
			v.pass(name, "%s holds %d certificates", f, n)
			return
		}
	}
	v.fail(name, "no certificate bundle at %s; add dockerTools.caCertificates", strings.Join(candidates, " or "))
}

func (v *verifier) locale() {
	const name = "locale"
	lang := v.o.Getenv("LC_ALL")
	if lang == "" {
		lang = v.o.Getenv("LANG")
	}
	norm := strings.ToLower(strings.ReplaceAll(lang, "-", ""))
	if !strings.HasSuffix(norm, ".utf8") {
		v.fail(name, "LANG/LC_ALL is %q, want a UTF-8 locale such as en_US.UTF-8", lang)
		return
	}
	if norm == "c.utf8" {
		// glibc 2.35 and later has C.UTF-8 built in: no archive needed.
		v.pass(name, "%s (built into glibc)", lang)
		return
	}
	archive := v.o.Getenv("LOCALE_ARCHIVE")
	if archive == "" {
		v.fail(name, "%s needs LOCALE_ARCHIVE pointing at a locale-archive that has it (glibcLocales)", lang)
		return
	}
	if _, fi, err := v.r.stat(archive); err != nil || !fi.Mode().IsRegular() {
		v.fail(name, "LOCALE_ARCHIVE=%s does not name a file", archive)
		return
	}
	v.pass(name, "%s from %s", lang, archive)
}

// pathHasProfile checks that PATH goes through the Home Manager profile and
// returns the profile's bin folder (in-image path).
func (v *verifier) pathHasProfile() string {
	const name = "PATH"
	want := path.Join(v.o.Home, ProfileLink, "bin")
	p := v.o.Getenv("PATH")
	for _, dir := range strings.Split(p, ":") {
		if path.Clean(dir) != want {
			continue
		}
		if _, fi, err := v.r.stat(want); err != nil || !fi.IsDir() {
			v.fail(name, "PATH has %s but it is not a folder: run egoagent image link-home", want)
			return want
		}
		v.pass(name, "includes the Home Manager profile %s", want)
		return want
	}
	v.fail(name, "PATH=%q does not include %s (the Home Manager profile)", p, want)
	return want
}

// lookPath finds name in PATH inside the root, like exec.LookPath would in
// the container.
func (v *verifier) lookPath(name string) (string, error) {
	var lastErr error
	for _, dir := range strings.Split(v.o.Getenv("PATH"), ":") {
		if dir == "" || !path.IsAbs(dir) {
			continue
		}
		p := path.Join(dir, name)
		if err := v.isExecutable(p); err != nil {
			if v.r.exists(p) {
				lastErr = err
			}
			continue
		}
		return p, nil
	}
	if lastErr != nil {
		return "", lastErr
	}
	return "", fmt.Errorf("not found on PATH")
}

func (v *verifier) tool(name, profileBin string) {
	label := "tool " + name
	p, err := v.lookPath(name)
	if err != nil {
		v.fail(label, "%v; add it to the image (nix/home/dev-tools.nix or the system packages)", err)
		return
	}
	where := p
	if strings.HasPrefix(p, profileBin+"/") {
		where += " (Home Manager profile)"
	}
	v.pass(label, "%s", where)
}

func (v *verifier) homeFiles() {
	const name = "home files"
	real, fi, err := v.r.stat(HomeFilesLink)
	if err != nil {
		v.fail(name, "%v; the image must record its Home Manager files there for image link-home", err)
		return
	}
	if !fi.IsDir() {
		v.fail(name, "%s resolves to %s, which is not a folder", HomeFilesLink, real)
		return
	}
	v.pass(name, "%s -> %s", HomeFilesLink, real)
}

func (v *verifier) egoagentConfig() {
	const name = "egoagent config"
	real, fi, err := v.r.stat(ConfigPath)
	if err != nil {
		v.fail(name, "%v; the image must carry egoagent's configuration", err)
		return
	}
	if !fi.Mode().IsRegular() {
		v.fail(name, "%s is not a file", real)
		return
	}
	data, err := os.ReadFile(v.r.host(real))
	if err != nil {
		v.fail(name, "cannot read %s: %v", ConfigPath, unwrapPathError(err))
		return
	}
	// The real loader, so that what passes here is what egoagent accepts.
	cfg, err := config.Parse(ConfigPath, data, config.Env{Home: v.o.Home})
	if err != nil {
		v.fail(name, "%v", err)
		return
	}
	if len(cfg.Secrets) == 0 {
		v.fail(name, "%s declares no [[secret]]; the image's configuration must name the Codex credentials", ConfigPath)
		return
	}
	names := make([]string, 0, len(cfg.Secrets))
	for _, s := range cfg.Secrets {
		names = append(names, s.Name)
	}
	v.pass(name, "%s loads: secrets %s", ConfigPath, strings.Join(names, ", "))
}
