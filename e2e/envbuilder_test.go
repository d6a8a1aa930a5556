package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

// The envbuilder end-to-end test (docs/e2e.md, "The envbuilder template"): the real
// egoengine-envbuilder template on the run's Docker Engine, with the real
// envbuilder (built from the Go module proxy by scripts/e2e.sh) building a
// devcontainer from a Git repository served here, its layer cache in a
// registry served here, and the real coder/envbuilder provider asking that
// registry at the next start whether the image is built already.

// serveOn serves handler on host, on a port of its own, until the test
// ends; it returns host:port.
func (h *harness) serveOn(host string, handler http.Handler) string {
	t := h.t
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	_, port, _ := net.SplitHostPort(l.Addr().String())
	p, _ := strconv.Atoi(port)
	h.ports = append(h.ports, p)
	return l.Addr().String()
}

// startRegistry serves an OCI registry on host: go-containerregistry's
// (the one `crane registry serve` runs), with its blobs on disk in the
// run's folder. The engine pushes and pulls there over plain HTTP (the
// harness lists the run's /16 as insecure), envbuilder in the container
// pushes its cache there and Coder's provisioner reads it. It returns
// host:port.
func (h *harness) startRegistry(host string) string {
	dir := filepath.Join(h.runDir, "registry")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		h.t.Fatal(err)
	}
	return h.serveOn(host, registry.New(registry.WithBlobHandler(registry.NewDiskBlobHandler(dir)), registry.Logger(log.New(io.Discard, "", 0))))
}

// serveGit serves the bare repositories under root over Git's smart HTTP
// protocol (the real `git http-backend`, as CGI) on host; it returns
// host:port. Both envbuilder in the container and the provider in Coder's
// provisioner clone from it.
func (h *harness) serveGit(host, root string) string {
	git, err := exec.LookPath("git")
	if err != nil {
		h.t.Fatalf("git is needed to serve the devcontainer repository: %v", err)
	}
	return h.serveOn(host, &cgi.Handler{Path: git, Args: []string{"http-backend"},
		Env: append(h.childEnv(), "GIT_PROJECT_ROOT="+root, "GIT_HTTP_EXPORT_ALL=1")})
}

// devcontainerRepo makes the bare repository name.git under root and
// returns commit, which commits files (path: content) to it.
func (h *harness) devcontainerRepo(root, name string) (commit func(files map[string]string)) {
	t := h.t
	work := filepath.Join(h.runDir, "repo-"+name)
	bare := filepath.Join(root, name+".git")
	// No configuration of the machine's or the user's is read.
	env := h.childEnv("GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_AUTHOR_NAME=e2e", "GIT_AUTHOR_EMAIL=e2e@localhost",
		"GIT_COMMITTER_NAME=e2e", "GIT_COMMITTER_EMAIL=e2e@localhost")
	git := func(args ...string) {
		if _, err := h.run(time.Minute, env, "git", args...); err != nil {
			t.Fatal(err)
		}
	}
	git("init", "-q", "--bare", "-b", "main", bare)
	git("init", "-q", "-b", "main", work)
	return func(files map[string]string) {
		for f, content := range files {
			if err := os.MkdirAll(filepath.Dir(filepath.Join(work, f)), 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(work, f), content)
		}
		git("-C", work, "add", "-A")
		git("-C", work, "commit", "-q", "-m", "devcontainer")
		git("-C", work, "push", "-q", bare, "main")
	}
}

// builderImage makes the envbuilder image as upstream's Dockerfile does
// (FROM scratch, the binary at /.envbuilder/bin/envbuilder, KANIKO_DIR,
// the binary as entrypoint), tagged ref in the run's engine.
func (h *harness) builderImage(d dockerRun, binary, ref string) {
	t := h.t
	b, err := os.ReadFile(binary)
	if err != nil {
		t.Fatalf("the envbuilder binary (E2E_ENVBUILDER): %v", err)
	}
	// The image is the one file: docker import makes its folders.
	if _, err := h.docker(d, tarOf(t, ".envbuilder/bin/envbuilder", string(b)), 2*time.Minute, "import",
		"--change", "ENV KANIKO_DIR=/.envbuilder",
		"--change", `ENTRYPOINT ["/.envbuilder/bin/envbuilder"]`, "-", ref); err != nil {
		t.Fatal(err)
	}
}

// tarOf is a tar stream of one regular file, name, holding content.
func tarOf(t *testing.T, name, content string) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(content))}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(tw, content); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// manifestTypes are the manifest media types the registry is asked for.
var manifestTypes = strings.Join([]string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.docker.distribution.manifest.v2+json",
}, ", ")

// registryGet reads one path of the registry API.
func registryGet(reg, path string) ([]byte, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+reg+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", manifestTypes)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, tail(string(b), 300))
	}
	return b, nil
}

// registryBlobs lists every blob the tags of repo name (manifests,
// configs, layers; through indexes), by digest.
func registryBlobs(reg, repo string) (map[string]bool, error) {
	b, err := registryGet(reg, "/v2/"+repo+"/tags/list")
	if err != nil {
		return nil, err
	}
	var tags struct{ Tags []string }
	if err := json.Unmarshal(b, &tags); err != nil {
		return nil, err
	}
	blobs := map[string]bool{}
	var walk func(ref string) error
	walk = func(ref string) error {
		m, err := registryGet(reg, "/v2/"+repo+"/manifests/"+ref)
		if err != nil {
			return err
		}
		var man struct {
			Manifests []struct{ Digest string }
			Config    struct{ Digest string }
			Layers    []struct{ Digest string }
		}
		if err := json.Unmarshal(m, &man); err != nil {
			return err
		}
		for _, sub := range man.Manifests {
			if err := walk(sub.Digest); err != nil {
				return err
			}
		}
		if man.Config.Digest != "" {
			blobs[man.Config.Digest] = true
		}
		for _, l := range man.Layers {
			blobs[l.Digest] = true
		}
		return nil
	}
	for _, tag := range tags.Tags {
		if err := walk(tag); err != nil {
			return nil, err
		}
	}
	return blobs, nil
}

// blobText is a blob's bytes, gunzipped when it is a gzip stream (a
// layer), so that a secret in a file of the layer can be found.
func blobText(reg, repo, digest string) ([]byte, error) {
	b, err := registryGet(reg, "/v2/"+repo+"/blobs/"+digest)
	if err != nil {
		return nil, err
	}
	if len(b) > 2 && b[0] == 0x1f && b[1] == 0x8b {
		z, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(z)
	}
	return b, nil
}

// blobsHolding searches the blobs of repo's tags, but those in skip, for
// secrets; it returns where it found them and how many blobs it read.
func blobsHolding(t *testing.T, reg, repo string, skip map[string]bool, secrets ...string) (found []string, n int) {
	t.Helper()
	blobs, err := registryBlobs(reg, repo)
	if err != nil {
		t.Fatal(err)
	}
	for digest := range blobs {
		if skip[digest] {
			continue
		}
		b, err := blobText(reg, repo, digest)
		if err != nil {
			t.Fatal(err)
		}
		n++
		if where, ok := leakIn(repo+" blob "+digest, b, secrets...); ok {
			found = append(found, where)
		}
	}
	return found, n
}

func TestEnvbuilderWorkspace(t *testing.T) {
	d := dockerFromEnv(t)
	envbuilderBin := mustEnv(t, "E2E_ENVBUILDER", "the envbuilder binary (scripts/e2e.sh build-envbuilder)")
	version := strings.TrimPrefix(mustEnv(t, "E2E_ENVBUILDER_VERSION", "envbuilder's release"), "v")
	// The token only as the owner's user secret: the server has no TF_VAR_.
	h, tag := newDockerHarness(t, d, "b", true)

	// Everything the workspace's build pulls or clones is served on the
	// bridge's address: the container reaches it there, and so do the
	// engine and Coder's provisioner on this host.
	reg := h.startRegistry(d.gateway)
	gitRoot := filepath.Join(h.runDir, "git")
	gitAddr := h.serveGit(d.gateway, gitRoot)

	t0 := time.Now()
	// The egoengine image in the registry: the devcontainer's base and
	// the fallback, as ghcr.io serves the real one.
	base := reg + "/veraticus/nix-config/egoengine:" + tag
	builder := reg + "/coder/envbuilder:" + version
	h.mustDocker(d, "tag", imageRepo+":"+tag, base)
	h.builderImage(d, envbuilderBin, builder)
	for _, ref := range []string{base, builder} {
		if _, err := h.docker(d, "", 5*time.Minute, "push", ref); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("images built and pushed to the registry %s in %s", reg, time.Since(t0).Round(time.Millisecond))

	// A project with a devcontainer on top of the egoengine image, as the
	// owner's repositories have: one RUN layer for the cache to keep.
	marker := "built by envbuilder " + h.runID
	changed := "changed " + marker
	commit := h.devcontainerRepo(gitRoot, "project")
	dockerfile := func(marker string) string {
		return fmt.Sprintf("FROM %s\nUSER root\nRUN echo %q >/etc/egoengine-devcontainer\nUSER joshsymonds\n", base, marker)
	}
	commit(map[string]string{
		".devcontainer/devcontainer.json": `{"build": {"dockerfile": "Dockerfile"}}` + "\n",
		".devcontainer/Dockerfile":        dockerfile(marker),
		"README.md":                       "e2e devcontainer\n",
	})
	repoURL := "http://" + gitAddr + "/project.git"
	cacheRepo := reg + "/egoengine-cache"

	const tmpl = "egoengine-envbuilder"
	stage := h.stageTemplate(tmpl, tmpl, nil)
	h.pushStaged(tmpl, stage, "image_tag="+tag, "docker_socket="+d.host, "envbuilder_image="+builder,
		"cache_repo="+cacheRepo, "insecure_cache_repo=true")

	const ws = "devc"
	params := []string{"--parameter", "repo=custom", "--parameter", "custom_repo_url=" + repoURL, "--parameter", "fallback_image=" + base}
	start := time.Now()
	if _, err := h.coder(10*time.Minute, append([]string{"create", ws, "--template", tmpl, "--yes"}, params...)...); err != nil {
		t.Fatalf("%v\nserver log:\n%s", err, readTail(h.serverLog))
	}
	t.Cleanup(h.deleteWorkspace(ws))
	w, ag := h.waitReady(ws, 10*time.Minute)
	t.Logf("workspace %s: create to agent ready in %s (the devcontainer built)", w.ID, time.Since(start).Round(time.Millisecond))
	c := h.containerOf(d, w.ID)
	secretPath := "/home/joshsymonds/.codex/auth.json"

	// checkStarted: the container runs image, the devcontainer's layer
	// (its RUN wrote want) is in it, the agent runs as joshsymonds from the home volume and
	// egoagent's start script succeeded with the secret in place.
	checkStarted := func(t *testing.T, c, image, want, restart string, w workspace, ag agent) {
		t.Helper()
		if c == "" {
			t.Fatalf("no container carries label coder.workspace_id=%s", w.ID)
		}
		var info []struct {
			Config     struct{ Image string }
			State      struct{ Running bool }
			HostConfig struct {
				NetworkMode   string
				RestartPolicy struct{ Name string }
			}
			Mounts []struct{ Name, Destination string }
		}
		if err := json.Unmarshal([]byte(h.mustDocker(d, "inspect", c)), &info); err != nil || len(info) != 1 {
			t.Fatalf("docker inspect: %v", err)
		}
		ci := info[0]
		if !ci.State.Running || !strings.HasPrefix(ci.Config.Image, image) {
			t.Errorf("container: running %v, image %q; want running %s", ci.State.Running, ci.Config.Image, image)
		}
		if ci.HostConfig.RestartPolicy.Name != restart || ci.HostConfig.NetworkMode != "bridge" {
			t.Errorf("restart policy %q, network %q; want %s, bridge", ci.HostConfig.RestartPolicy.Name, ci.HostConfig.NetworkMode, restart)
		}
		if len(ci.Mounts) != 1 || ci.Mounts[0].Name != homeVolumeOf(w.ID) || ci.Mounts[0].Destination != "/home/joshsymonds" {
			t.Errorf("mounts %+v, want the volume %s at /home/joshsymonds", ci.Mounts, homeVolumeOf(w.ID))
		}
		if out, err := h.inWorkspace(d, c, "cat /etc/egoengine-devcontainer"); err != nil || strings.TrimSpace(out) != want {
			t.Errorf("the devcontainer's own layer: /etc/egoengine-devcontainer is %q, %v; want %q", out, err, want)
		}
		// The agent (coder agent, as the init script execs it, and the
		// child it forks when it is the container's first process) runs as
		// 1000.
		agents := 0
		for _, line := range strings.Split(h.mustDocker(d, "top", c, "-eo", "pid,uid,args"), "\n") {
			if f := strings.Fields(line); len(f) >= 4 && strings.HasSuffix(f[2], "/coder") && f[3] == "agent" {
				agents++
				if f[1] != "1000" {
					t.Errorf("the agent runs as uid %s, want 1000 (joshsymonds): %s", f[1], line)
				}
			}
		}
		if agents == 0 {
			t.Errorf("no agent process in the container")
		}
		timing := h.scriptTiming(w.LatestBuild.ID, "egoagent")
		if timing.Status != "ok" || timing.ExitCode != 0 {
			t.Errorf("egoagent start script: status %q exit %d; agent logs:\n%s", timing.Status, timing.ExitCode, h.agentLogText(ag.ID))
		}
		if logs := h.agentLogText(ag.ID); !strings.Contains(logs, "codex: fresh") {
			t.Errorf("the agent's startup log lacks egoagent's codex line; it is:\n%s", logs)
		}
		if ds := h.egoagentDaemons(d, c); len(ds) != 1 {
			t.Errorf("want one egoagent daemon in the container, found %d: %q", len(ds), ds)
		}
	}

	step(t, "envbuilder builds the devcontainer from the Git repository, pushes it to the cache, and the agent starts in it", func(t *testing.T) {
		// The container that built the devcontainer in place is not
		// restarted by the engine (main.tf says why).
		checkStarted(t, c, builder, marker, "no", w, ag)
		logs, err := h.containerLogs(d, c)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"Cloned repository!", "Built image!", "Pushed image!"} {
			if !strings.Contains(logs, want) {
				t.Errorf("envbuilder's output lacks %q; its end:\n%s", want, h.masked(tail(logs, 3000)))
			}
		}
		if out, err := h.inWorkspace(d, c, "cat ~/src/project/README.md"); err != nil || out != "e2e devcontainer\n" {
			t.Errorf("the clone in the workspace folder ~/src/project: README %q, %v", out, err)
		}
		blobs, err := registryBlobs(reg, "egoengine-cache")
		if err != nil || len(blobs) == 0 {
			t.Fatalf("the cache repository %s holds nothing after the build: %v", cacheRepo, err)
		}
		h.checkSignedIn(t)
		t.Logf("the cache repository holds %d blobs", len(blobs))
	})

	step(t, "~/.codex/auth.json in the devcontainer: mode 0600, owned by 1000, the vault's content", func(t *testing.T) {
		h.checkContainerSecret(t, d, c, secretPath, secretV1)
	})

	step(t, "the token is in the container's environment and nowhere else, nor in any blob of the cache", func(t *testing.T) {
		h.checkDockerToken(t, d, ws, c)
		// The search finds the token in a layer that holds it: an image of
		// one file, pushed to a repository of its own.
		probe := reg + "/e2e-probe:token"
		if _, err := h.docker(d, tarOf(t, "probe", h.token), time.Minute, "import", "-", probe); err != nil {
			t.Fatal(h.masked(err.Error()))
		}
		h.mustDocker(d, "push", probe)
		h.mustDocker(d, "rmi", probe)
		if found, _ := blobsHolding(t, reg, "e2e-probe", nil, h.tokenSecrets...); len(found) == 0 {
			t.Fatal("the search of the registry does not find the token in the probe image that holds it")
		}
		// The cache's own blobs (not the base image's, pushed by this test).
		own, err := registryBlobs(reg, "veraticus/nix-config/egoengine")
		if err != nil {
			t.Fatal(err)
		}
		found, n := blobsHolding(t, reg, "egoengine-cache", own, h.tokenSecrets...)
		for _, where := range found {
			t.Errorf("token leaked into the cache registry: %s", where)
		}
		if n == 0 {
			t.Errorf("the cache holds no blob of its own: nothing was searched")
		}
		t.Logf("searched %d blobs of the cache for the token", n)
	})

	step(t, "stop then start: the cached image, no rebuild, the home volume kept, one egoagent daemon", func(t *testing.T) {
		const file = ".e2e-before-stop"
		if _, err := h.inWorkspace(d, c, "echo "+h.runID+" >~/"+file); err != nil {
			t.Fatal(err)
		}
		if _, err := h.coder(5*time.Minute, "stop", ws, "--yes"); err != nil {
			t.Fatal(err)
		}
		if left := h.containerOf(d, w.ID); left != "" {
			t.Errorf("the stopped workspace still has container %s", left)
		}
		t0 := time.Now()
		if _, err := h.coder(10*time.Minute, "start", ws, "--yes"); err != nil {
			t.Fatal(err)
		}
		w, ag = h.waitReady(ws, 10*time.Minute)
		t.Logf("start to agent ready in %s (from the cache)", time.Since(t0).Round(time.Millisecond))
		c2 := h.containerOf(d, w.ID)
		if c2 == "" || c2 == c {
			t.Fatalf("after start the container is %q, was %q: want a new one", c2, c)
		}
		c = c2
		checkStarted(t, c, cacheRepo+"@sha256:", marker, "unless-stopped", w, ag)
		if logs, err := h.containerLogs(d, c); err != nil || strings.Contains(logs, "Building image") || !strings.Contains(logs, "envbuilder") {
			t.Errorf("envbuilder built again instead of starting the cached image (or wrote nothing: %v); its end:\n%s", err, h.masked(tail(logs, 3000)))
		}
		if out, err := h.inWorkspace(d, c, "cat ~/"+file); err != nil || strings.TrimSpace(out) != h.runID {
			t.Errorf("the file written before stop: %q, %v", out, err)
		}
		h.checkContainerSecret(t, d, c, secretPath, secretV1)
		h.checkDockerToken(t, d, ws, c)
	})

	step(t, "an engine restart brings the cached workspace back, with its image's environment, not rebuilt", func(t *testing.T) {
		w, ag = h.checkEngineRestart(t, d, ws, c)
		logs, err := h.containerLogs(d, c)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(logs, "Building image") {
			t.Errorf("the restarted container built again; its end:\n%s", h.masked(tail(logs, 3000)))
		}
		if out, err := h.inWorkspace(d, c, "cat /etc/egoengine-devcontainer"); err != nil || strings.TrimSpace(out) != marker {
			t.Errorf("after the restart /etc/egoengine-devcontainer is %q, %v; want %q", out, err, marker)
		}
		h.checkContainerSecret(t, d, c, secretPath, secretV1)
	})

	step(t, "a changed devcontainer misses the cache at the next start and is built again", func(t *testing.T) {
		commit(map[string]string{".devcontainer/Dockerfile": dockerfile(changed)})
		if _, err := h.coder(5*time.Minute, "stop", ws, "--yes"); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		if _, err := h.coder(10*time.Minute, "start", ws, "--yes"); err != nil {
			t.Fatal(err)
		}
		w, ag = h.waitReady(ws, 10*time.Minute)
		t.Logf("start to agent ready in %s (built again)", time.Since(t0).Round(time.Millisecond))
		c = h.containerOf(d, w.ID)
		checkStarted(t, c, builder, changed, "no", w, ag)
		if logs, err := h.containerLogs(d, c); err != nil || !strings.Contains(logs, "Built image!") {
			t.Errorf("envbuilder did not build the changed devcontainer (%v); its end:\n%s", err, h.masked(tail(logs, 3000)))
		}
	})

	step(t, "delete: the container and the volume are gone, nothing of the run is left in the engine", func(t *testing.T) {
		h.deleteNow(ws)
		h.checkEngineEmpty(t, d)
	})
}
