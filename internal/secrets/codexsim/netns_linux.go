package codexsim

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// netnsEnv marks the child test process: its value is the name of the one
// test that the child runs inside the namespace.
const netnsEnv = "EGOAGENT_CODEXSIM_NETNS"

// InNetns runs the calling test in a network namespace of its own, where the
// only interface is loopback, so that the real Codex CLI (and anything it
// starts) can reach nothing but servers the test starts on 127.0.0.1 there.
// Call it first thing in the test:
//
//	codex := checktest.CodexPath(t) // skip before the re-run, not inside it
//	if !codexsim.InNetns(t) {
//		return // the child ran the test; its result is this test's result
//	}
//	iss := codexsim.NewIssuer() // inside the namespace
//
// In the test process, InNetns re-runs the test binary, selecting this one
// test, in a new network namespace (CLONE_NEWNET; when not root, inside a new
// user namespace too, mapping the user to root there, which is what lets it
// bring loopback up). The child runs verbose and keeps -test.timeout and
// -test.short. The parent then passes, skips or fails as the child did, shows
// the child's output on failure or with -v, and InNetns returns false. In the
// child it brings loopback up, checks that loopback is all there is, and
// returns true. Code of an enclosing test before t.Run runs in the child too.
//
// Why this isolates: a new network namespace starts with a single interface,
// lo, and an empty routing table. With no other interface there is no route
// off the machine: a connection to anything but 127.0.0.0/8 or ::1 fails at
// once with "network unreachable". DNS fails with it (a nameserver off the
// machine is unreachable; one on a loopback address, such as
// systemd-resolved's, has no listener in the new namespace). The child
// refuses to run the test if it finds any interface other than lo. Nothing
// outside is probed to prove it. Unix sockets on the file system are not
// network-namespaced; Run gives Codex a home of its own and none of the
// test's environment (no proxy or socket variables).
//
// Where namespaces cannot be made (an unprivileged user where the kernel or
// AppArmor forbids user namespaces), the test is skipped, or fails when
// EGOAGENT_REQUIRE_CODEX=1.
func InNetns(t *testing.T) bool {
	t.Helper()
	if os.Getenv(netnsEnv) == t.Name() {
		if err := loopbackOnly(); errors.Is(err, unix.EPERM) {
			// A user namespace without capabilities (Ubuntu's AppArmor
			// restriction on unprivileged user namespaces does this).
			unavailable(t, fmt.Sprintf("codexsim: no privilege in the new network namespace: %v", err))
		} else if err != nil {
			t.Fatalf("codexsim: inside the network namespace: %v", err)
		}
		return true
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("codexsim: %v", err)
	}
	cmd := exec.Command(exe, childArgs(t.Name())...)
	cmd.Env = append(os.Environ(), netnsEnv+"="+t.Name())
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if uid, gid := os.Getuid(), os.Getgid(); uid != 0 {
		cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWUSER
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: gid, Size: 1}}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if cmd.ProcessState == nil { // it never started: no namespace for us here
		unavailable(t, fmt.Sprintf("codexsim: cannot start a process in a new network namespace: %v", err))
	}
	o := out.String()
	switch {
	case err != nil:
		t.Fatalf("codexsim: the test failed in its network namespace (%v):\n%s", err, o)
	case strings.Contains(o, "--- SKIP: "+t.Name()):
		t.Skipf("codexsim: skipped in its network namespace:\n%s", o)
	case !strings.Contains(o, "--- PASS: "+t.Name()):
		t.Fatalf("codexsim: the test did not run in its network namespace:\n%s", o)
	case testing.Verbose():
		t.Logf("in its network namespace:\n%s", o)
	}
	return false
}

// unavailable ends a test that cannot get a namespace: a skip, or a failure
// when EGOAGENT_REQUIRE_CODEX=1 (where a skipped Codex test must not pass
// unnoticed).
func unavailable(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("EGOAGENT_REQUIRE_CODEX") == "1" {
		t.Fatal(why + "; EGOAGENT_REQUIRE_CODEX=1 makes that a failure")
	}
	t.Skip(why)
}

// childArgs selects exactly this test (each level of a subtest name matched
// whole) and keeps the parent's verbosity and timeout. Other flags are left
// out on purpose: the log, profile and coverage files belong to the parent.
func childArgs(name string) []string {
	var levels []string
	for _, l := range strings.Split(name, "/") {
		levels = append(levels, "^"+regexp.QuoteMeta(l)+"$")
	}
	args := []string{"-test.run=" + strings.Join(levels, "/"), "-test.count=1", "-test.v=true"}
	for _, a := range os.Args[1:] {
		if strings.HasPrefix(a, "-test.timeout=") || strings.HasPrefix(a, "-test.short") {
			args = append(args, a)
		}
	}
	return args
}

// loopbackOnly brings lo up and checks that it is the only interface.
func loopbackOnly() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("reading lo's flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing lo up: %w", err)
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return err
	}
	for _, i := range ifs {
		if i.Name != "lo" {
			return fmt.Errorf("interface %s is here too: this is not a fresh network namespace", i.Name)
		}
	}
	return nil
}
