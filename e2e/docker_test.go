package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veraticus/egoengine/internal/secrets/source/onepassword/opservice"
)

// The Docker end-to-end test (docs/e2e.md, "On a real Docker Engine"): the
// real egoengine-shell template, pushed to a real Coder and applied by the
// real kreuzwerker/docker provider against the Docker Engine that
// scripts/docker-harness.sh started for this run, running the stand-in image
// of scripts/standin-image.sh.

const imageRepo = "ghcr.io/veraticus/nix-config/egoengine"

// dockerRun is the engine of this run, as scripts/e2e.sh started it.
type dockerRun struct {
	host    string // DOCKER_HOST, unix://.../docker.sock
	config  string // DOCKER_CONFIG of the run (not ~/.docker)
	gateway string // the bridge's address on this host
	bridge  string // the bridge's name
	base    string // the stand-in image scripts/standin-image.sh built
	dir     string // the harness's folder (docker-harness.sh restart DIR)
}

func dockerFromEnv(t *testing.T) dockerRun {
	return dockerRun{
		host:    mustEnv(t, "E2E_DOCKER_HOST", "the Docker Engine of the run (scripts/docker-harness.sh start)"),
		config:  mustEnv(t, "E2E_DOCKER_CONFIG", "the docker CLI's folder of the run"),
		gateway: mustEnv(t, "E2E_DOCKER_GATEWAY", "the address of the run's bridge on this host"),
		bridge:  mustEnv(t, "E2E_DOCKER_BRIDGE", "the name of the run's bridge"),
		base:    mustEnv(t, "E2E_DOCKER_IMAGE", "the stand-in image (scripts/standin-image.sh build)"),
		dir:     mustEnv(t, "E2E_DOCKER_DIR", "the folder of the run's engine (scripts/docker-harness.sh)"),
	}
}

// docker runs the docker CLI against the run's engine, never another.
func (h *harness) docker(d dockerRun, stdin string, timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = h.childEnv("DOCKER_HOST="+d.host, "DOCKER_CONFIG="+d.config, "DOCKER_BUILDKIT=0")
	cmd.Dir = h.runDir
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %s: %w", timeout, ctx.Err())
	}
	if err != nil {
		return out.String(), fmt.Errorf("docker %s: %w\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, tail(out.String(), 2000), tail(errb.String(), 2000))
	}
	return out.String(), nil
}

// containerLogs is what the container wrote, stdout and stderr both
// (docker logs keeps them apart: the CLI prints the container's stderr on
// its own).
func (h *harness) containerLogs(d dockerRun, c string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", "logs", c)
	cmd.Env = h.childEnv("DOCKER_HOST="+d.host, "DOCKER_CONFIG="+d.config)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("docker logs %s: %w: %s", c, err, tail(string(out), 500))
	}
	return string(out), nil
}

func (h *harness) mustDocker(d dockerRun, args ...string) string {
	h.t.Helper()
	out, err := h.docker(d, "", 2*time.Minute, args...)
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

// forward relays connections from the bridge's address to target (the
// 1Password service, which listens on loopback only): the containers reach
// it there. It stops with the test.
func (h *harness) forward(host, target string) string {
	t := h.t
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, u)
			mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			go func() { _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	_, port, _ := net.SplitHostPort(l.Addr().String())
	p, _ := strconv.Atoi(port)
	h.ports = append(h.ports, p)
	return l.Addr().String()
}

// runImage layers on the stand-in what only this run knows: where the test
// build of egoagent-op finds the 1Password service (the relay on the
// bridge) and the certificate it trusts; and, when caPEM is given, a
// certificate authority the workspace must trust (the compose stack's
// Caddy, whose local CA signs the access URL's certificate). It is tagged
// imageRepo:tag.
func (h *harness) runImage(d dockerRun, opAddr, tag string, caPEM []byte) {
	t := h.t
	dir := filepath.Join(h.runDir, "image-"+tag)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "optest.pem"), h.svc.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	trust := ""
	if caPEM != nil {
		writeFile(t, filepath.Join(dir, "ca.crt"), string(caPEM))
		trust = "USER root\nCOPY ca.crt /usr/local/share/ca-certificates/egoengine-e2e.crt\nRUN /usr/sbin/update-ca-certificates >/dev/null\nUSER joshsymonds\n"
	}
	writeFile(t, filepath.Join(dir, "Dockerfile"), fmt.Sprintf(`FROM %s
COPY optest.pem /etc/egoengine/optest.pem
ENV EGOAGENT_OPTEST_ADDR=%s EGOAGENT_OPTEST_CERT=/etc/egoengine/optest.pem
%s`, d.base, opAddr, trust))
	h.mustDocker(d, "build", "-q", "-t", imageRepo+":"+tag, dir)
}

var registryModule = regexp.MustCompile(`(?m)^(\s*)source\s*=\s*"registry\.coder\.com/coder/([a-z-]+)/coder"\n\s*version\s*=\s*"[^"]*"\n`)

// stageShell assembles the real egoengine-shell as scripts/push-templates.sh
// uploads it (see stageTemplate). edit, if given, rewrites main.tf (the
// update test's variants).
func (h *harness) stageShell(name string, edit func(string) string) string {
	return h.stageTemplate("egoengine-shell", name, edit)
}

// stageTemplate assembles the real template tmpl as
// scripts/push-templates.sh uploads it, with one change Coder's
// provisioner needs here: the two IDE modules from registry.coder.com
// (unreachable) become their local stand-ins of coder-templates/testdata,
// as in make test-templates. edit, if given, rewrites main.tf.
func (h *harness) stageTemplate(tmpl, name string, edit func(string) string) string {
	t := h.t
	parent := filepath.Join(h.runDir, "stage-"+name)
	if _, err := h.run(time.Minute, h.childEnv(), filepath.Join(h.repo, "scripts", "push-templates.sh"), "--stage", parent, tmpl); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, tmpl)
	h.swapIDEModules(filepath.Join(dir, "modules", "egoengine-ides"))
	if edit != nil {
		main := filepath.Join(dir, "main.tf")
		b, err := os.ReadFile(main)
		if err != nil {
			t.Fatal(err)
		}
		edited := edit(string(b))
		if edited == string(b) {
			t.Fatalf("the edit of %s changed nothing", name)
		}
		writeFile(t, main, edited)
	}
	return dir
}

// swapIDEModules makes the egoengine-ides module in folder ides use the
// local stand-ins of coder-templates/testdata instead of the two modules
// from registry.coder.com, which Coder's provisioner cannot fetch here.
func (h *harness) swapIDEModules(ides string) {
	t := h.t
	for _, m := range []string{"code-server", "jetbrains"} {
		if err := copyTree(filepath.Join(h.repo, "coder-templates", "testdata", "standin-"+m), filepath.Join(ides, "standin-"+m)); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.Join(ides, "main.tf"))
	if err != nil {
		t.Fatal(err)
	}
	swapped := registryModule.ReplaceAllString(string(b), "${1}source   = \"./standin-${2}\"\n")
	if strings.Contains(swapped, "registry.coder.com/coder/") || strings.Count(swapped, "./standin-") != 2 {
		t.Fatalf("could not swap the IDE modules for their stand-ins in %s", ides)
	}
	writeFile(t, filepath.Join(ides, "main.tf"), swapped)
}

func (h *harness) pushShell(d dockerRun, name, dir, tag string) {
	h.pushStaged(name, dir, "image_tag="+tag, "docker_socket="+d.host)
}

// pushStaged pushes the staged template in dir as name, with the
// variables given as name=value.
func (h *harness) pushStaged(name, dir string, vars ...string) {
	t := h.t
	start := time.Now()
	args := []string{"templates", "push", name, "--directory", dir, "--yes", "--ignore-lockfile", "--message", "e2e docker run " + h.runID}
	for _, v := range vars {
		args = append(args, "--variable", v)
	}
	if _, err := h.coder(5*time.Minute, args...); err != nil {
		t.Fatalf("%v\nserver log:\n%s", err, readTail(h.serverLog))
	}
	t.Logf("template %s pushed in %s", name, time.Since(start).Round(time.Millisecond))
}

var (
	movedBlock  = regexp.MustCompile(`(?s)\n# Where the volume stood[^\n]*\n(#[^\n]*\n)*moved \{.*?\n\}\n`)
	homeModule  = regexp.MustCompile(`(?s)\n# The persistent home \(see modules/egoengine-home\)[^\n]*\n(#[^\n]*\n)*module "home" \{.*?\n\}\n`)
	homeVolume  = regexp.MustCompile(`(?s)resource "docker_volume" "home" \{.*?\n\}\n`)
	moduleInput = strings.NewReplacer("var.workspace.", "data.coder_workspace.me.", "var.owner.", "data.coder_workspace_owner.me.")
)

// withoutMoved is main.tf without its moved block.
func withoutMoved(mainTF string) string { return movedBlock.ReplaceAllString(mainTF, "\n") }

// oldLayout is main.tf as it was before the home moved into the shared
// module: the same volume, declared at the root as docker_volume.home.
func (h *harness) oldLayout(mainTF string) string {
	b, err := os.ReadFile(filepath.Join(h.repo, "coder-templates", "modules", "egoengine-home", "main.tf"))
	if err != nil {
		h.t.Fatal(err)
	}
	vol := homeVolume.FindString(string(b))
	if vol == "" || !homeModule.MatchString(mainTF) || !movedBlock.MatchString(mainTF) {
		h.t.Fatal("main.tf or modules/egoengine-home no longer has the shape the old-layout copy is made from")
	}
	out := homeModule.ReplaceAllString(withoutMoved(mainTF), "\n"+moduleInput.Replace(vol))
	return strings.ReplaceAll(out, "module.home.name", "docker_volume.home.name")
}

// containerOf is the workspace's container ("" when there is none); it
// fails the test if there are several.
func (h *harness) containerOf(d dockerRun, wsID string) string {
	h.t.Helper()
	ids := strings.Fields(h.mustDocker(d, "ps", "-aq", "--no-trunc", "--filter", "label=coder.workspace_id="+wsID))
	if len(ids) > 1 {
		h.t.Fatalf("workspace %s has %d containers: %v", wsID, len(ids), ids)
	}
	if len(ids) == 0 {
		return ""
	}
	return ids[0]
}

func homeVolumeOf(wsID string) string { return "coder-" + wsID + "-home" }

// volumeCreated is when the workspace's home volume was made ("" if there
// is none): a volume made anew under the same name has another time.
func (h *harness) volumeCreated(d dockerRun, wsID string) string {
	out, err := h.docker(d, "", time.Minute, "volume", "inspect", "-f", "{{.CreatedAt}}", homeVolumeOf(wsID))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

// inWorkspace runs a shell command in the container as the workspace user.
func (h *harness) inWorkspace(d dockerRun, c, script string) (string, error) {
	return h.docker(d, "", 2*time.Minute, "exec", "-u", "joshsymonds", c, "sh", "-c", script)
}

// egoagentDaemons are the `egoagent run` processes in the container.
func (h *harness) egoagentDaemons(d dockerRun, c string) []string {
	var out []string
	for _, line := range strings.Split(h.mustDocker(d, "top", c, "-eo", "pid,args"), "\n") {
		// The daemon's argv: egoagent --config ... --log-format json run ...
		if f := strings.Fields(line); len(f) >= 3 && strings.HasSuffix(f[1], "egoagent") && slices.Contains(f[2:], "run") {
			out = append(out, line)
		}
	}
	return out
}

// inVolume reads a file of a (stopped) workspace's home from its volume.
func (h *harness) inVolume(d dockerRun, tag, volume, path string) (string, error) {
	return h.docker(d, "", 2*time.Minute, "run", "--rm", "--network", "none", "-v", volume+":/h:ro", "--entrypoint", "cat", imageRepo+":"+tag, "/h/"+path)
}

// newDockerHarness starts, in the folder sub of the run's, what a workspace
// on the run's engine needs: the 1Password service (its vault holding the
// Codex item) relayed onto the bridge, PostgreSQL, and a Coder that listens
// on the bridge's address (this host's: the containers reach it there, the
// CLI and the test too) and serves its own binary as the agent; then the
// run image imageRepo:tag, the stand-in plus the service's address. The
// token reaches workspaces as TF_VAR_op_service_account_token, or with
// viaUserSecret only as the owner's Coder user secret.
func newDockerHarness(t *testing.T, d dockerRun, sub string, viaUserSecret bool) (h *harness, tag string) {
	h = newHarnessIn(t, sub)
	h.listenHost = d.gateway
	h.agentBinaries = true
	h.noTFVar = viaUserSecret
	t.Cleanup(h.checkNothingLeft)

	h.startService()
	h.svc.AddVault(opservice.Vault{Name: "egoengine", Items: []opservice.Item{codexItem(secretV1)}})
	opAddr := h.forward(d.gateway, h.svc.Addr())
	h.startPostgres()
	h.startCoder()
	h.login()
	if viaUserSecret {
		h.storeToken(h.token)
	}

	t0 := time.Now()
	tag = "e2e-" + h.runID[:8]
	h.runImage(d, opAddr, tag, nil)
	t.Logf("run image %s:%s (the stand-in plus the service's address) built in %s", imageRepo, tag, time.Since(t0).Round(time.Millisecond))
	return h, tag
}

func TestDockerWorkspace(t *testing.T) {
	d := dockerFromEnv(t)
	// A folder of its own in the run's: TestEndToEnd runs in the same one.
	h, tag := newDockerHarness(t, d, "k", false)
	const tmpl = "egoengine-shell"
	stage := h.stageShell(tmpl, nil)
	h.pushShell(d, tmpl, stage, tag)

	const ws = "dock"
	start := time.Now()
	if _, err := h.coder(5*time.Minute, "create", ws, "--template", tmpl, "--yes"); err != nil {
		t.Fatalf("%v\nserver log:\n%s", err, readTail(h.serverLog))
	}
	t.Cleanup(h.deleteWorkspace(ws))
	w, ag := h.waitReady(ws, 4*time.Minute)
	t.Logf("workspace %s: create to agent ready in %s", w.ID, time.Since(start).Round(time.Millisecond))
	c := h.containerOf(d, w.ID)
	secretPath := "/home/joshsymonds/.codex/auth.json"

	step(t, "the real provider runs the workspace in a container; the agent connects from inside; egoagent starts", func(t *testing.T) {
		if c == "" {
			t.Fatalf("no container carries label coder.workspace_id=%s", w.ID)
		}
		var info []struct {
			Name   string
			Config struct {
				Image string
				User  string
			}
			State struct {
				Running bool
				Health  *struct{ Status string }
			}
			HostConfig struct {
				NetworkMode   string
				RestartPolicy struct{ Name string }
			}
			Mounts []struct {
				Name        string
				Destination string
			}
		}
		if err := json.Unmarshal([]byte(h.mustDocker(d, "inspect", c)), &info); err != nil || len(info) != 1 {
			t.Fatalf("docker inspect: %v", err)
		}
		ci := info[0]
		if !ci.State.Running || ci.Config.Image != imageRepo+":"+tag || ci.Config.User != "joshsymonds" || ci.Name != "/coder-"+adminUser+"-"+ws {
			t.Errorf("container %s: running %v, image %q, user %q; want running %s:%s as joshsymonds named coder-%s-%s", ci.Name, ci.State.Running, ci.Config.Image, ci.Config.User, imageRepo, tag, adminUser, ws)
		}
		if ci.State.Health == nil || ci.State.Health.Status != "healthy" {
			t.Errorf("container health %+v, want healthy (it reaches Coder's /healthz)", ci.State.Health)
		}
		if ci.HostConfig.RestartPolicy.Name != "unless-stopped" || ci.HostConfig.NetworkMode != "bridge" {
			t.Errorf("restart policy %q, network %q; want unless-stopped, bridge", ci.HostConfig.RestartPolicy.Name, ci.HostConfig.NetworkMode)
		}
		if len(ci.Mounts) != 1 || ci.Mounts[0].Name != homeVolumeOf(w.ID) || ci.Mounts[0].Destination != "/home/joshsymonds" {
			t.Errorf("mounts %+v, want the volume %s at /home/joshsymonds", ci.Mounts, homeVolumeOf(w.ID))
		}
		// The agent in the container is the binary the server served: the
		// real init script downloaded it.
		if out, err := h.inWorkspace(d, c, "ls /tmp/coder.*/coder"); err != nil || strings.TrimSpace(out) == "" {
			t.Errorf("no agent downloaded by the init script in the container's /tmp: %q %v", out, err)
		}
		if ag.Directory != "/home/joshsymonds" {
			t.Errorf("agent folder %q, want /home/joshsymonds", ag.Directory)
		}
		timing := h.scriptTiming(w.LatestBuild.ID, "egoagent")
		if timing.Status != "ok" || timing.ExitCode != 0 {
			t.Errorf("egoagent start script: status %q exit %d; agent logs:\n%s", timing.Status, timing.ExitCode, h.agentLogText(ag.ID))
		}
		logs := h.agentLogText(ag.ID)
		for _, want := range []string{"$ egoagent image link-home", "linked    ~/.config/egoengine/stand-in", "$ egoagent start", "codex: fresh (written)"} {
			if !strings.Contains(logs, want) {
				t.Errorf("the agent's startup log lacks %q; it is:\n%s", want, logs)
			}
		}
		if ds := h.egoagentDaemons(d, c); len(ds) != 1 {
			t.Errorf("want one egoagent daemon in the container, found %d: %q", len(ds), ds)
		}
		h.checkSignedIn(t)
	})

	step(t, "~/.codex/auth.json in the container: mode 0600, owned by 1000, the vault's content", func(t *testing.T) {
		h.checkContainerSecret(t, d, c, secretPath, secretV1)
	})

	step(t, "egoagent image verify passes in the container and names what the stand-in cannot keep", func(t *testing.T) {
		out, err := h.coder(2*time.Minute, "ssh", ws, "--", "egoagent", "image", "verify")
		if err != nil {
			t.Fatalf("egoagent image verify in the workspace: %v", err)
		}
		for _, want := range []string{"image verify: all", "checks passed", "skip  tool op", "skip  tool starship", "a stand-in image (/etc/egoengine/stand-in)"} {
			if !strings.Contains(out, want) {
				t.Errorf("image verify output lacks %q:\n%s", want, out)
			}
		}
		t.Logf("image verify in the container:\n%s", out)
	})

	step(t, "the metadata line reaches Coder's API; coder ssh egoagent refresh brings a changed value", func(t *testing.T) {
		v, took, seen, err := h.watchMetadata(ag.ID, "3_egoagent", 30*time.Second+apiSlack, func(v string) bool {
			return strings.HasPrefix(v, "ok: 1 fresh")
		})
		if err != nil {
			t.Fatalf("%v; values seen: %q", err, seen)
		}
		t.Logf("metadata %q after %s", v, took.Round(time.Millisecond))
		h.svc.PutItem("egoengine", codexItem(secretV2))
		out, err := h.coder(2*time.Minute, "ssh", ws, "--", "egoagent", "refresh")
		if err != nil || !strings.Contains(out, "codex: fresh (written)") {
			t.Fatalf("egoagent refresh in the container: %v: %s", err, out)
		}
		h.checkContainerSecret(t, d, c, secretPath, secretV2)
	})

	step(t, "the token given only as TF_VAR_ is in the container's environment and nowhere else", func(t *testing.T) {
		h.checkDockerToken(t, d, ws, c)
	})

	step(t, "stop then start: the container is replaced, the home volume is the same, one egoagent daemon, a clean stop", func(t *testing.T) {
		const marker = ".e2e-before-stop"
		if _, err := h.inWorkspace(d, c, "echo "+h.runID+" >~/"+marker); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		if _, err := h.coder(5*time.Minute, "stop", ws, "--yes"); err != nil {
			t.Fatal(err)
		}
		t.Logf("stop took %s", time.Since(t0).Round(time.Millisecond))
		if left := h.containerOf(d, w.ID); left != "" {
			t.Errorf("the stopped workspace still has container %s", left)
		}
		if _, err := h.docker(d, "", time.Minute, "volume", "inspect", homeVolumeOf(w.ID)); err != nil {
			t.Fatalf("the home volume is gone after stop: %v", err)
		}
		// The agent's stop script asked egoagent's daemon to end; its log,
		// on the volume, says it stopped rather than being killed.
		log, err := h.inVolume(d, tag, homeVolumeOf(w.ID), ".local/state/egoagent/egoagent.log")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(log, `"stopping"`) {
			t.Errorf("egoagent's log has no clean stop (\"stopping\"); its end:\n%s", tail(log, 1500))
		}

		t0 = time.Now()
		if _, err := h.coder(5*time.Minute, "start", ws, "--yes"); err != nil {
			t.Fatal(err)
		}
		w, ag = h.waitReady(ws, 4*time.Minute)
		t.Logf("start to agent ready in %s", time.Since(t0).Round(time.Millisecond))
		c2 := h.containerOf(d, w.ID)
		if c2 == "" || c2 == c {
			t.Fatalf("after start the container is %q, was %q: want a new one", c2, c)
		}
		c = c2
		if out, err := h.inWorkspace(d, c, "cat ~/"+marker); err != nil || strings.TrimSpace(out) != h.runID {
			t.Errorf("the file written before stop: %q, %v", out, err)
		}
		mounts := strings.TrimSpace(h.mustDocker(d, "inspect", "-f", "{{range .Mounts}}{{.Name}}{{end}}", c))
		if mounts != homeVolumeOf(w.ID) {
			t.Errorf("the new container mounts %q, want %s", mounts, homeVolumeOf(w.ID))
		}
		if ds := h.egoagentDaemons(d, c); len(ds) != 1 {
			t.Errorf("want one egoagent daemon after start, found %d: %q", len(ds), ds)
		}
		if timing := h.scriptTiming(w.LatestBuild.ID, "egoagent"); timing.Status != "ok" || timing.ExitCode != 0 {
			t.Errorf("egoagent start script after start: %q exit %d", timing.Status, timing.ExitCode)
		}
		h.checkContainerSecret(t, d, c, secretPath, secretV2)
		h.checkDockerToken(t, d, ws, c)
	})

	step(t, "an engine restart brings the running workspace back (restart unless-stopped), its daemon stopped cleanly", func(t *testing.T) {
		w, ag = h.checkEngineRestart(t, d, ws, c)
		h.checkContainerSecret(t, d, c, secretPath, secretV2)
	})

	step(t, "a template update that moves the home volume keeps it; without the moved block it is lost", func(t *testing.T) {
		const moves = "egoengine-shell-moves"
		old := h.stageShell("old", h.oldLayout)
		h.pushShell(d, moves, old, tag)
		for _, name := range []string{"mover", "loser"} {
			if _, err := h.coder(5*time.Minute, "create", name, "--template", moves, "--yes"); err != nil {
				t.Fatalf("%v\nserver log:\n%s", err, readTail(h.serverLog))
			}
			t.Cleanup(h.deleteWorkspace(name))
			mw, _ := h.waitReady(name, 4*time.Minute)
			if _, err := h.inWorkspace(d, h.containerOf(d, mw.ID), "echo "+name+" >~/.e2e-before-update"); err != nil {
				t.Fatal(err)
			}
		}
		created := map[string]string{}
		for _, name := range []string{"mover", "loser"} {
			created[name] = h.volumeCreated(d, h.workspace(name).ID)
		}
		// Version 2: the real template, the volume in module.home, moved.
		h.pushShell(d, moves, h.stageShell("new", nil), tag)
		if _, err := h.coder(5*time.Minute, "update", "mover"); err != nil {
			t.Fatal(err)
		}
		mw, _ := h.waitReady("mover", 4*time.Minute)
		if out, err := h.inWorkspace(d, h.containerOf(d, mw.ID), "cat ~/.e2e-before-update"); err != nil || strings.TrimSpace(out) != "mover" {
			t.Errorf("after the update with the moved block the home lost its file: %q, %v", out, err)
		}
		if got := h.volumeCreated(d, mw.ID); got != created["mover"] {
			t.Errorf("after the update with the moved block the home volume was made anew (%s, was %s)", got, created["mover"])
		}
		// Version 3: the same without its moved block. OpenTofu plans to
		// destroy docker_volume.home and create module.home's: both name
		// the same Docker volume.
		h.pushShell(d, moves, h.stageShell("nomoved", withoutMoved), tag)
		_, uerr := h.coder(5*time.Minute, "update", "loser")
		lw := h.workspace("loser")
		t.Logf("update without the moved block: coder update failed: %v; build %s (%s)", uerr != nil, lw.LatestBuild.Status, lw.LatestBuild.Job.Error)
		if b, err := h.api("/api/v2/workspacebuilds/" + lw.LatestBuild.ID + "/logs"); err == nil {
			var logs []struct {
				Output string `json:"output"`
			}
			_ = json.Unmarshal(b, &logs)
			for _, l := range logs {
				if strings.Contains(l.Output, "Error") || strings.Contains(l.Output, "docker_volume.home: Destr") {
					t.Logf("  its build log: %s", h.masked(l.Output))
				}
			}
		}
		// The next builds finish what the plan began: the stop destroys
		// the volume the old address still names, the start makes an
		// empty one.
		if _, err := h.coder(5*time.Minute, "stop", "loser", "--yes"); err != nil {
			t.Logf("coder stop after the update: %v", err)
		}
		if _, err := h.coder(5*time.Minute, "start", "loser", "--yes"); err != nil {
			t.Logf("coder start after the update: %v", err)
		}
		lw = h.workspace("loser")
		t.Logf("then stop and start: build %s %s (%s)", lw.LatestBuild.Transition, lw.LatestBuild.Status, lw.LatestBuild.Job.Error)
		kept := false
		if lc := h.containerOf(d, lw.ID); lc != "" {
			out, _ := h.inWorkspace(d, lc, "cat ~/.e2e-before-update 2>/dev/null || true")
			kept = strings.TrimSpace(out) == "loser"
		} else if out, err := h.inVolume(d, tag, homeVolumeOf(lw.ID), ".e2e-before-update"); err == nil && strings.TrimSpace(out) == "loser" {
			kept = true
		}
		if kept {
			t.Errorf("without the moved block the home kept its file: the test cannot tell a kept home from a lost one")
		}
		if got := h.volumeCreated(d, lw.ID); got == created["loser"] {
			t.Errorf("without the moved block the home volume is still the one made at %s", got)
		}
		t.Logf("without the moved block the home is lost: the file is gone, the volume was made anew")
		h.deleteNow("loser")
		h.deleteNow("mover")
	})

	step(t, "a container that cannot reach Coder fails the build, visibly", func(t *testing.T) {
		// A firewall between the bridge and Coder, for new connections only
		// (the running workspace's agent keeps its own).
		rule := []string{"INPUT", "-i", d.bridge, "-p", "tcp", "--dport", strconv.Itoa(h.coderPort),
			"-m", "conntrack", "--ctstate", "NEW", "-j", "REJECT", "--reject-with", "tcp-reset"}
		if _, err := h.runAsRoot(time.Minute, append([]string{"iptables", "-w", "-I"}, rule...)...); err != nil {
			t.Fatalf("this step needs iptables (scripts/deps.sh): %v", err)
		}
		dropped := false
		unblock := func() {
			if !dropped {
				dropped = true
				_, _ = h.runAsRoot(time.Minute, append([]string{"iptables", "-w", "-D"}, rule...)...)
			}
		}
		t.Cleanup(unblock)
		const name = "cut"
		t0 := time.Now()
		_, err := h.coder(5*time.Minute, "create", name, "--template", tmpl, "--yes")
		t.Cleanup(h.deleteWorkspace(name))
		cw := h.workspace(name)
		t.Logf("create with Coder unreachable from the container: error %v after %s; build %s: %s", err != nil, time.Since(t0).Round(time.Second), cw.LatestBuild.Status, cw.LatestBuild.Job.Error)
		logs, lerr := h.api("/api/v2/workspacebuilds/" + cw.LatestBuild.ID + "/logs")
		if lerr != nil {
			t.Fatal(lerr)
		}
		if err == nil || cw.LatestBuild.Status != "failed" || !strings.Contains(string(logs), "Error: container failed to be in healthy state") {
			t.Errorf("with Coder unreachable the build must fail on the healthcheck; got create error %v, build %s, job error %q; build log:\n%s", err, cw.LatestBuild.Status, cw.LatestBuild.Job.Error, tail(h.masked(string(logs)), 3000))
		}
		unblock()
		h.deleteNow(name)
	})

	step(t, "a user secret beside the Terraform variable: the user secret wins from the next start", func(t *testing.T) {
		// A second token of the same service account, as the owner's
		// user secret; the server still gives the first as TF_VAR_.
		second := h.svc.NewToken()
		h.storeToken(second)
		if _, err := h.coder(5*time.Minute, "restart", ws, "--yes"); err != nil {
			t.Fatal(err)
		}
		w, ag = h.waitReady(ws, 4*time.Minute)
		c = h.containerOf(d, w.ID)
		if timing := h.scriptTiming(w.LatestBuild.ID, "egoagent"); timing.Status != "ok" || timing.ExitCode != 0 {
			t.Errorf("egoagent start script after the restart: %q exit %d", timing.Status, timing.ExitCode)
		}
		if n := h.svc.SignIns(second); n == 0 {
			t.Errorf("no sign-in with the user secret's token after the restart")
		}
		h.checkContainerSecret(t, d, c, secretPath, secretV2)
		h.checkDockerToken(t, d, ws, c)
	})

	step(t, "delete: the container and the volume are gone, nothing of the run is left in the engine", func(t *testing.T) {
		h.deleteNow(ws)
		h.checkEngineEmpty(t, d)
	})
}

// checkEngineRestart restarts the run's dockerd with the workspace ws
// running in container c: the engine stops it with its grace (egoagent's
// daemon logs one more clean stop) and starts the same container again,
// whose agent reconnects and starts one egoagent daemon again. It returns
// the workspace and agent once ready.
func (h *harness) checkEngineRestart(t *testing.T, d dockerRun, ws, c string) (workspace, agent) {
	t.Helper()
	const logPath = "~/.local/state/egoagent/egoagent.log"
	stops := func() int {
		out, err := h.inWorkspace(d, c, "cat "+logPath)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(out, `"stopping"`)
	}
	before := stops()
	started := strings.TrimSpace(h.mustDocker(d, "inspect", "-f", "{{.State.StartedAt}}", c))
	t0 := time.Now()
	if _, err := h.runAsRoot(3*time.Minute, filepath.Join(h.repo, "scripts", "docker-harness.sh"), "restart", d.dir); err != nil {
		t.Fatal(err)
	}
	t.Logf("engine stopped and started again in %s", time.Since(t0).Round(time.Millisecond))
	// The same container, started again by the engine.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st, _ := h.docker(d, "", time.Minute, "inspect", "-f", "{{.State.Running}} {{.State.StartedAt}}", c)
		if f := strings.Fields(st); len(f) == 2 && f[0] == "true" && f[1] != started {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container did not come back after the engine restart: %q (started %s before)", st, started)
		}
		time.Sleep(time.Second)
	}
	// The agent reconnects (coder ssh goes through it) and its start
	// script starts egoagent again: one daemon.
	deadline = time.Now().Add(3 * time.Minute)
	for {
		out, err := h.coder(time.Minute, "ssh", ws, "--", "egoagent", "status", "--json")
		var st struct {
			Daemon struct {
				Running bool `json:"running"`
			} `json:"daemon"`
		}
		if err == nil && json.Unmarshal([]byte(out), &st) == nil && st.Daemon.Running && len(h.egoagentDaemons(d, c)) == 1 {
			break
		}
		if time.Now().After(deadline) {
			logs, _ := h.containerLogs(d, c)
			logs = agentLines.ReplaceAllString(logs, "") // the agent's own, many and long
			_ = os.WriteFile(filepath.Join(h.runDir, "container-"+c[:12]+".log"), []byte(h.masked(logs)), 0o600)
			elog, _ := h.inWorkspace(d, c, "cat "+logPath)
			t.Fatalf("after the engine restart the workspace is not back: %v: %s; daemons %q; the container's output ends:\n%s\negoagent's log ends:\n%s", err, tail(out, 500), h.egoagentDaemons(d, c), h.masked(tail(logs, 4000)), h.masked(tail(elog, 3000)))
		}
		time.Sleep(2 * time.Second)
	}
	w, ag := h.waitReady(ws, 3*time.Minute)
	t.Logf("workspace back %s after the engine restart began", time.Since(t0).Round(time.Millisecond))
	if after := stops(); after != before+1 {
		t.Errorf("egoagent's log shows %d clean stops after the engine stopped the container, want %d", after, before+1)
	}
	return w, ag
}

// agentLines are the Coder agent's log lines in a container's output.
var agentLines = regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\d [\d:.]+ \[(debu|info|warn|erro)\].*\n(\s+.*\n)*`)

// checkEngineEmpty: no container, no volume and only the engine's own three
// networks are left.
func (h *harness) checkEngineEmpty(t *testing.T, d dockerRun) {
	t.Helper()
	if left := strings.TrimSpace(h.mustDocker(d, "ps", "-aq")); left != "" {
		t.Errorf("containers left in the engine: %s", left)
	}
	if left := strings.TrimSpace(h.mustDocker(d, "volume", "ls", "-q")); left != "" {
		t.Errorf("volumes left in the engine: %s", left)
	}
	if nets := strings.Fields(h.mustDocker(d, "network", "ls", "--format", "{{.Name}}")); len(nets) != 3 {
		t.Errorf("networks in the engine: %v, want only bridge, host and none", nets)
	}
}

// checkContainerSecret reads the secret file in the container: mode, owner
// and content.
func (h *harness) checkContainerSecret(t *testing.T, d dockerRun, c, path, want string) {
	t.Helper()
	out, err := h.inWorkspace(d, c, "stat -c '%a %u %g' "+path)
	if err != nil || strings.TrimSpace(out) != "600 1000 1000" {
		t.Errorf("stat %s in the container: %q, %v; want 600 1000 1000", path, out, err)
	}
	got, err := h.inWorkspace(d, c, "cat "+path)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("%s in the container holds %q, want %q", path, got, want)
	}
}

// checkDockerToken: the token egoagent is to run with (h.token) is the
// daemon's. The container's configuration holds the token given as TF_VAR_
// once, or none when there is none: the user secret never reaches it. No
// file of the container holds any token of the run, nor the container's
// output, the agent's logs or any of Coder's API answers but the build's
// Terraform state, and the state holds only the TF_VAR_ token (where
// docker_container.env puts it, as docs/templates.md says), never the
// user secret.
func (h *harness) checkDockerToken(t *testing.T, d dockerRun, ws, c string) {
	t.Helper()
	var env []string
	if err := json.Unmarshal([]byte(h.mustDocker(d, "inspect", "-f", "{{json .Config.Env}}", c)), &env); err != nil {
		t.Fatal(err)
	}
	n, other := 0, 0
	for _, kv := range env {
		switch {
		case h.tfVarToken != "" && kv == "OP_SERVICE_ACCOUNT_TOKEN="+h.tfVarToken:
			n++
		case strings.HasPrefix(kv, "OP_SERVICE_ACCOUNT_TOKEN="):
			other++
		}
	}
	if want := min(len(h.tfVarToken), 1); n != want || other != 0 {
		t.Errorf("the container's configuration holds OP_SERVICE_ACCOUNT_TOKEN with the TF_VAR_ token %d times and another value %d times, want %d and 0", n, other, want)
	}
	if where, found := leakIn("docker inspect", []byte(h.mustDocker(d, "inspect", c)), h.secretsBut(h.tfVarToken)...); found {
		t.Errorf("token leaked: %s", where)
	}
	// The daemon's environment, read in the container as its user (the
	// pid daemon.json names, as the container sees it); never printed.
	environ, err := h.inWorkspace(d, c, `cat "/proc/$(sed -n 's/.*"pid"[[:space:]]*:[[:space:]]*\([0-9][0-9]*\).*/\1/p' ~/.local/state/egoagent/daemon.json | head -n 1)/environ"`)
	if err != nil {
		t.Fatal(h.masked(err.Error()))
	}
	got := ""
	for _, kv := range splitNUL([]byte(environ)) {
		if v, ok := strings.CutPrefix(kv, "OP_SERVICE_ACCOUNT_TOKEN="); ok {
			got = v
		}
	}
	if got != h.token {
		t.Errorf("egoagent's daemon has an OP_SERVICE_ACCOUNT_TOKEN of %d characters, want the %s (%d characters)", len(got), h.tokenSource(), len(h.token))
	}

	// No file in the container holds it; the search is shown to find it.
	patterns := strings.Join(h.tokenSecrets, "\n") + "\n"
	grep := func() string {
		out, err := h.docker(d, patterns, 5*time.Minute, "exec", "-i", "-u", "0", c, "sh", "-c",
			"grep -rlF -f /dev/stdin / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev 2>/dev/null; true")
		if err != nil {
			t.Fatal(h.masked(err.Error()))
		}
		return strings.TrimSpace(out)
	}
	if _, err := h.docker(d, h.token, time.Minute, "exec", "-i", c, "sh", "-c", "cat >/tmp/e2e-token-probe"); err != nil {
		t.Fatal(h.masked(err.Error()))
	}
	if got := grep(); got != "/tmp/e2e-token-probe" {
		t.Fatalf("the search in the container does not find the token where it was put: %q", got)
	}
	h.mustDocker(d, "exec", c, "rm", "/tmp/e2e-token-probe")
	if got := grep(); got != "" {
		t.Errorf("files in the container hold the token: %s", got)
	}
	if logs, err := h.containerLogs(d, c); err != nil {
		t.Error(err)
	} else if where, found := leakIn("docker logs", []byte(logs), h.tokenSecrets...); found {
		t.Errorf("token leaked: %s", where)
	}

	wsv := h.checkCoderViews(t, ws)
	// The state is where the real template's docker_container.env puts the
	// TF_VAR_ token, readable by template admins (docs/templates.md):
	// shown, not hidden. Nothing else of any token is there.
	if body, err := h.api("/api/v2/workspacebuilds/" + wsv.LatestBuild.ID + "/state"); err != nil {
		t.Error(err)
	} else {
		if h.tfVarToken != "" {
			if _, found := leakIn("state", body, h.tfVarToken); !found {
				t.Errorf("the build's Terraform state does not hold the TF_VAR_ token: docker_container.env no longer carries it, or the search is broken")
			}
		}
		if where, found := leakIn("state", body, h.secretsBut(h.tfVarToken)...); found {
			t.Errorf("token leaked: %s", where)
		}
	}
}

// checkCoderViews: no token of the run in Coder's API views of workspace
// ws (extra paths too), the agent's metadata stream or Coder's log. It
// returns the workspace.
func (h *harness) checkCoderViews(t *testing.T, ws string, extra ...string) workspace {
	t.Helper()
	wsv := h.workspace(ws)
	ag, _ := wsv.agent()
	for _, p := range append(h.apiViews(ws, wsv), extra...) {
		body, err := h.api(p)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if where, found := leakIn("GET "+p, body, h.tokenSecrets...); found {
			t.Errorf("token leaked: %s", where)
		}
	}
	if _, _, seen, _ := h.watchMetadata(ag.ID, "3_egoagent", 2*time.Second, func(string) bool { return false }); len(seen) > 0 {
		if where, found := leakIn("watch-metadata", []byte(strings.Join(seen, "\n")), h.tokenSecrets...); found {
			t.Errorf("token leaked: %s", where)
		}
	}
	if b, err := os.ReadFile(h.serverLog); err != nil {
		t.Error(err)
	} else if where, found := leakIn(h.serverLog, b, h.tokenSecrets...); found {
		t.Errorf("token leaked: %s", where)
	}
	return wsv
}

// secretsBut is every token secret of the run but those of token (none for
// ""): what no place may show even where token is expected.
func (h *harness) secretsBut(token string) []string {
	if token == "" {
		return h.tokenSecrets
	}
	skip := h.svc.TokenSecretsOf(token)
	var out []string
	for _, s := range h.tokenSecrets {
		if !slices.Contains(skip, s) && s != strings.TrimPrefix(token, "ops_") {
			out = append(out, s)
		}
	}
	return out
}

// tokenSource names where h.token came from, for messages.
func (h *harness) tokenSource() string {
	if h.userToken != "" {
		return "owner's user secret " + userSecretName
	}
	return "server's TF_VAR_" + tokenVariable
}

// runAsRoot runs a command as root: as it is when this is root, else
// through sudo -n (CI runners), as scripts/e2e.sh does.
func (h *harness) runAsRoot(timeout time.Duration, args ...string) (string, error) {
	if os.Geteuid() != 0 {
		args = append([]string{"sudo", "-n"}, args...)
	}
	return h.run(timeout, h.childEnv(), args[0], args[1:]...)
}
