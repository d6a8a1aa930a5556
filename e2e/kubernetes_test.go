package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/veraticus/egoengine/internal/secrets/source/onepassword/opservice"
)

// The Kubernetes end-to-end test (docs/e2e.md, "On a real Kubernetes"): the
// real egoengine-kubernetes template, pushed to a real Coder outside the
// cluster and applied by the real hashicorp/kubernetes provider (built from
// its vendored source) against the one-node cluster scripts/kube-harness.sh
// started for this run. The Pod runs the real envbuilder, which starts the
// stand-in image as the fallback, both pulled from a registry that wants a
// password.

// kubeRun is the cluster of this run, as scripts/kube-harness.sh started it.
type kubeRun struct {
	kubeconfig  string // the administrator's (system:masters)
	provisioner string // the identity Coder's provisioner uses: no rights but RBAC's
	bin         string // kubectl and the rest
	gateway     string // the pod bridge's address on this host
	registry    string // host:port of the registry, TLS by ca, with a password
	regUser     string
	regPassword string
	ca          string
	dir         string
}

func kubeFromEnv(t *testing.T) kubeRun {
	k := kubeRun{
		kubeconfig:  mustEnv(t, "E2E_KUBECONFIG", "the cluster's administrator kubeconfig (scripts/kube-harness.sh start)"),
		provisioner: mustEnv(t, "E2E_KUBE_PROVISIONER_KUBECONFIG", "the kubeconfig Coder's provisioner uses"),
		bin:         mustEnv(t, "E2E_KUBE_BIN", "the folder of the Kubernetes binaries (scripts/kube-build.sh)"),
		gateway:     mustEnv(t, "E2E_KUBE_GATEWAY", "the pod bridge's address on this host"),
		registry:    mustEnv(t, "E2E_KUBE_REGISTRY", "the registry of the run, host:port"),
		regUser:     mustEnv(t, "E2E_KUBE_REGISTRY_USER", "the registry's user"),
		ca:          mustEnv(t, "E2E_KUBE_CA", "the cluster's certificate authority"),
		dir:         mustEnv(t, "E2E_KUBE_DIR", "the folder of the run's cluster"),
	}
	b, err := os.ReadFile(mustEnv(t, "E2E_KUBE_REGISTRY_PASSWORD_FILE", "the file of the registry's password"))
	if err != nil {
		t.Fatal(err)
	}
	k.regPassword = string(b)
	return k
}

// kubectl runs kubectl as the cluster's administrator, with stdin.
func (h *harness) kubectl(k kubeRun, stdin string, args ...string) (string, error) {
	return h.runInput(stdin, 3*time.Minute, h.childEnv("KUBECONFIG="+k.kubeconfig), filepath.Join(k.bin, "kubectl"), args...)
}

func (h *harness) mustKubectl(k kubeRun, args ...string) string {
	h.t.Helper()
	out, err := h.kubectl(k, "", args...)
	if err != nil {
		h.t.Fatal(h.masked(err.Error()))
	}
	return out
}

// push copies the image ref of the run's Docker Engine to the cluster's
// registry as dest, with the registry's password and trusting only the
// cluster's CA (the engine itself trusts no registry but its own bridge's).
func (h *harness) push(d dockerRun, k kubeRun, ref, dest string) {
	t := h.t
	archive := filepath.Join(h.runDir, "tmp", "image.tar")
	h.mustDocker(d, "save", "-o", archive, ref)
	defer os.Remove(archive)
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(archive, &tag)
	if err != nil {
		t.Fatal(err)
	}
	to, err := name.NewTag(dest)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(to, img, remote.WithAuth(&authn.Basic{Username: k.regUser, Password: k.regPassword}), remote.WithTransport(k.transport(t))); err != nil {
		t.Fatalf("pushing %s: %v", dest, err)
	}
}

func (k kubeRun) transport(t *testing.T) http.RoundTripper {
	pem, err := os.ReadFile(k.ca)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	return tr
}

// pod is what the test reads of a Pod.
type pod struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Containers []struct {
			Name  string `json:"name"`
			Image string `json:"image"`
		} `json:"containers"`
		ImagePullSecrets []struct {
			Name string `json:"name"`
		} `json:"imagePullSecrets"`
		SecurityContext struct {
			FSGroup *int64 `json:"fsGroup"`
		} `json:"securityContext"`
		TerminationGracePeriodSeconds *int64            `json:"terminationGracePeriodSeconds"`
		Volumes                       []json.RawMessage `json:"volumes"`
	} `json:"spec"`
	Status struct {
		Phase             string `json:"phase"`
		ContainerStatuses []struct {
			State struct {
				Waiting *struct {
					Reason  string `json:"reason"`
					Message string `json:"message"`
				} `json:"waiting"`
			} `json:"state"`
		} `json:"containerStatuses"`
	} `json:"status"`
}

// podOf is the running Pod of the workspace ("" when there is none); it
// fails the test when there are several.
func (h *harness) podOf(k kubeRun, wsID string) string {
	h.t.Helper()
	var list struct{ Items []pod }
	if err := json.Unmarshal([]byte(h.mustKubectl(k, "-n", kubeNamespace, "get", "pods", "-l", "com.coder.workspace.id="+wsID, "-o", "json")), &list); err != nil {
		h.t.Fatal(err)
	}
	var running []string
	for _, p := range list.Items {
		if p.Status.Phase == "Running" {
			running = append(running, p.Metadata.Name)
		}
	}
	if len(running) > 1 {
		h.t.Fatalf("workspace %s has %d running Pods: %v", wsID, len(running), running)
	}
	if len(running) == 0 {
		return ""
	}
	return running[0]
}

// inPod runs a shell command in the workspace container (as root, the
// container's user: envbuilder's, before it hands over to joshsymonds).
func (h *harness) inPod(k kubeRun, p, script string) (string, error) {
	return h.kubectl(k, "", "-n", kubeNamespace, "exec", p, "-c", "dev", "--", "sh", "-c", script)
}

// podProcesses lists the container's processes as "pid uid argv".
func (h *harness) podProcesses(k kubeRun, p string) []string {
	out, err := h.inPod(k, p, `for d in /proc/[0-9]*; do a=$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null) || continue; [ -n "$a" ] && echo "${d#/proc/} $(stat -c %u "$d") $a"; done; true`)
	if err != nil {
		h.t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(out), "\n")
}

// podDaemons are the `egoagent run` processes in the Pod.
func (h *harness) podDaemons(k kubeRun, p string) []string {
	var out []string
	for _, line := range h.podProcesses(k, p) {
		if f := strings.Fields(line); len(f) >= 4 && strings.HasSuffix(f[2], "egoagent") && slices.Contains(f[3:], "run") {
			out = append(out, line)
		}
	}
	return out
}

// namespaceObjects are the workspace's objects left in the namespace, as
// kind/name.
func (h *harness) namespaceObjects(k kubeRun, wsID string) []string {
	out := strings.Fields(h.mustKubectl(k, "-n", kubeNamespace, "get",
		"deployments,replicasets,pods,persistentvolumeclaims,networkpolicies,services,configmaps,secrets",
		"-l", "com.coder.workspace.id="+wsID, "-o", "name"))
	return out
}

const kubeNamespace = "egoengine"

func TestKubernetesWorkspace(t *testing.T) {
	d := dockerFromEnv(t)
	k := kubeFromEnv(t)
	envbuilderBin := mustEnv(t, "E2E_ENVBUILDER", "the envbuilder binary (scripts/e2e.sh build-envbuilder)")
	version := strings.TrimPrefix(mustEnv(t, "E2E_ENVBUILDER_VERSION", "envbuilder's release"), "v")

	// Coder outside the cluster, listening on the pod bridge's address
	// (the Pods reach it there), its provisioner with the kubeconfig of an
	// identity that has only what deploy/kubernetes/workspaces.yaml grants.
	h := newHarnessIn(t, "kube")
	h.listenHost = k.gateway
	h.agentBinaries = true
	h.noTFVar = true
	h.coderEnv = []string{"KUBE_CONFIG_PATH=" + k.provisioner}
	t.Cleanup(h.checkNothingLeft)
	h.startService()
	h.svc.AddVault(opservice.Vault{Name: "egoengine", Items: []opservice.Item{codexItem(secretV1)}})
	opAddr := h.forward(k.gateway, h.svc.Addr())
	h.startPostgres()
	h.startCoder()
	h.login()

	// The images, in the registry that wants a password: the stand-in plus
	// the service's address (the fallback image), and envbuilder.
	t0 := time.Now()
	tag := "e2e-k-" + h.runID[:8]
	h.runImage(d, opAddr, tag, nil)
	base := k.registry + "/veraticus/nix-config/egoengine:" + tag
	builder := k.registry + "/coder/envbuilder:" + version
	localBuilder := "egoengine-e2e/envbuilder:" + version
	h.builderImage(d, envbuilderBin, localBuilder)
	h.push(d, k, imageRepo+":"+tag, base)
	h.push(d, k, localBuilder, builder)
	t.Logf("images built and pushed to %s in %s", k.registry, time.Since(t0).Round(time.Millisecond))

	// A project without a devcontainer: envbuilder starts the fallback.
	gitRoot := filepath.Join(h.runDir, "git")
	gitAddr := h.serveGit(k.gateway, gitRoot)
	h.devcontainerRepo(gitRoot, "project")(map[string]string{"README.md": "e2e kubernetes\n"})
	repoURL := "http://" + gitAddr + "/project.git"

	// The cluster side, as docs/kubernetes.md has the owner do it.
	h.mustKubectl(k, "apply", "-f", filepath.Join(h.repo, "deploy", "kubernetes", "workspaces.yaml"))
	h.mustKubectl(k, "-n", kubeNamespace, "create", "rolebinding", "egoengine-provisioner-e2e", "--role", "egoengine-provisioner", "--user", "egoengine-provisioner")
	h.pullSecret(k, kubeNamespace)
	if _, err := h.kubectl(k, h.token, "-n", kubeNamespace, "create", "secret", "generic", "egoengine-op-token", "--from-file", "token=/dev/stdin"); err != nil {
		t.Fatal(h.masked(err.Error()))
	}

	const tmpl = "egoengine-kubernetes"
	stage := h.stageTemplate(tmpl, tmpl, nil)
	vars := []string{"image_tag=" + tag, "namespace=" + kubeNamespace, "envbuilder_image=" + builder, "insecure_cache_repo=true",
		// --variable is read as CSV: a list value is quoted, its quotes doubled.
		fmt.Sprintf(`"egress_cidrs=[""%s/32""]"`, k.gateway)}
	h.pushStaged(tmpl, stage, vars...)

	const ws = "kube"
	params := []string{"--parameter", "repo=custom", "--parameter", "custom_repo_url=" + repoURL, "--parameter", "fallback_image=" + base,
		"--parameter", "cpu=1", "--parameter", "memory=2", "--parameter", "home_size=5"}
	start := time.Now()
	if _, err := h.coder(10*time.Minute, append([]string{"create", ws, "--template", tmpl, "--yes"}, params...)...); err != nil {
		t.Fatalf("%v\nserver log:\n%s", err, readTail(h.serverLog))
	}
	t.Cleanup(h.deleteWorkspace(ws))
	w, ag := h.waitReady(ws, 10*time.Minute)
	t.Logf("workspace %s: create to agent ready in %s", w.ID, time.Since(start).Round(time.Millisecond))
	p := h.podOf(k, w.ID)
	if p == "" {
		t.Fatalf("no running Pod carries com.coder.workspace.id=%s:\n%s", w.ID, h.mustKubectl(k, "-n", kubeNamespace, "get", "pods", "-o", "wide"))
	}
	secretPath := "/home/joshsymonds/.codex/auth.json"

	// checkStarted: the Pod as the template promises it, the agent as
	// joshsymonds, one egoagent daemon whose start script succeeded.
	checkStarted := func(t *testing.T, p string, w workspace, ag agent) {
		t.Helper()
		var pd pod
		if err := json.Unmarshal([]byte(h.mustKubectl(k, "-n", kubeNamespace, "get", "pod", p, "-o", "json")), &pd); err != nil {
			t.Fatal(err)
		}
		if len(pd.Spec.Containers) != 1 || pd.Spec.Containers[0].Image != builder {
			t.Errorf("the Pod's containers: %+v, want one running %s", pd.Spec.Containers, builder)
		}
		if len(pd.Spec.ImagePullSecrets) != 1 || pd.Spec.ImagePullSecrets[0].Name != "ghcr-pull" {
			t.Errorf("the Pod's pull Secrets: %+v, want ghcr-pull", pd.Spec.ImagePullSecrets)
		}
		if g := pd.Spec.SecurityContext.FSGroup; g == nil || *g != 1000 {
			t.Errorf("the Pod's fsGroup: %v, want 1000", g)
		}
		if g := pd.Spec.TerminationGracePeriodSeconds; g == nil || *g < 30 {
			t.Errorf("the Pod's termination grace: %v, want at least 30 s for egoagent's clean stop", g)
		}
		for _, v := range pd.Spec.Volumes {
			if strings.Contains(string(v), `"hostPath"`) {
				t.Errorf("the Pod mounts a hostPath: %s", v)
			}
		}
		agents := 0
		for _, line := range h.podProcesses(k, p) {
			if f := strings.Fields(line); len(f) >= 4 && strings.HasSuffix(f[2], "/coder") && f[3] == "agent" {
				agents++
				if f[1] != "1000" {
					t.Errorf("the agent runs as uid %s, want 1000 (joshsymonds): %s", f[1], line)
				}
			}
		}
		if agents == 0 {
			t.Errorf("no agent process in the Pod")
		}
		if timing := h.scriptTiming(w.LatestBuild.ID, "egoagent"); timing.Status != "ok" || timing.ExitCode != 0 {
			t.Errorf("egoagent start script: status %q exit %d; agent logs:\n%s", timing.Status, timing.ExitCode, h.agentLogText(ag.ID))
		}
		if ds := h.podDaemons(k, p); len(ds) != 1 {
			t.Errorf("want one egoagent daemon in the Pod, found %d: %q", len(ds), ds)
		}
	}
	// checkSecret: the Codex file in the Pod, and on the claim's volume.
	checkSecret := func(t *testing.T, p, want string) {
		t.Helper()
		out, err := h.inPod(k, p, "stat -c '%a %u %g' "+secretPath)
		if err != nil || strings.TrimSpace(out) != "600 1000 1000" {
			t.Errorf("stat %s in the Pod: %q, %v; want 600 1000 1000", secretPath, out, err)
		}
		if got, err := h.inPod(k, p, "cat "+secretPath); err != nil || got != want {
			t.Errorf("%s in the Pod holds %q (%v), want %q", secretPath, got, err, want)
		}
	}

	step(t, "the Pod runs envbuilder from the registry with the pull Secret; the agent connects; egoagent signs in", func(t *testing.T) {
		checkStarted(t, p, w, ag)
		h.checkSignedIn(t)
		if logs := h.agentLogText(ag.ID); !strings.Contains(logs, "codex: fresh") {
			t.Errorf("the agent's startup log lacks egoagent's codex line; it is:\n%s", logs)
		}
	})

	var claim string
	step(t, "~/.codex/auth.json: mode 0600, uid 1000, the vault's bytes, on the PersistentVolumeClaim", func(t *testing.T) {
		checkSecret(t, p, secretV1)
		claim = "coder-" + w.ID + "-home"
		pv := strings.TrimSpace(h.mustKubectl(k, "-n", kubeNamespace, "get", "pvc", claim, "-o", "jsonpath={.spec.volumeName}"))
		path := strings.TrimSpace(h.mustKubectl(k, "get", "pv", pv, "-o", "jsonpath={.spec.local.path}"))
		if !strings.HasPrefix(path, k.dir+"/") {
			t.Fatalf("the claim %s is bound to %q at %q, not one of the run's volumes", claim, pv, path)
		}
		out, err := h.runAsRoot(time.Minute, "cat", filepath.Join(path, ".codex", "auth.json"))
		if err != nil || out != secretV1 {
			t.Errorf("the volume of the claim does not hold the Codex file: %q, %v", out, err)
		}
	})

	step(t, "the token: in the Secret and the container's environment only", func(t *testing.T) {
		h.checkKubeToken(t, k, ws, p)
	})

	step(t, "the NetworkPolicy: ingress closed, egress to DNS, the internet and Coder's address only", func(t *testing.T) {
		var np struct {
			Items []struct {
				Spec struct {
					PolicyTypes []string          `json:"policyTypes"`
					Ingress     []json.RawMessage `json:"ingress"`
					Egress      []struct {
						To []struct {
							IPBlock *struct {
								CIDR   string   `json:"cidr"`
								Except []string `json:"except"`
							} `json:"ipBlock"`
							NamespaceSelector json.RawMessage `json:"namespaceSelector"`
						} `json:"to"`
					} `json:"egress"`
					PodSelector struct {
						MatchLabels map[string]string `json:"matchLabels"`
					} `json:"podSelector"`
				} `json:"spec"`
			} `json:"items"`
		}
		if err := json.Unmarshal([]byte(h.mustKubectl(k, "-n", kubeNamespace, "get", "networkpolicies", "-l", "com.coder.workspace.id="+w.ID, "-o", "json")), &np); err != nil {
			t.Fatal(err)
		}
		if len(np.Items) != 1 {
			t.Fatalf("the workspace has %d NetworkPolicies, want 1", len(np.Items))
		}
		s := np.Items[0].Spec
		if !slices.Contains(s.PolicyTypes, "Ingress") || !slices.Contains(s.PolicyTypes, "Egress") || len(s.Ingress) != 0 {
			t.Errorf("policy types %v, %d ingress rules; want Ingress and Egress, none", s.PolicyTypes, len(s.Ingress))
		}
		if s.PodSelector.MatchLabels["com.coder.workspace.id"] != w.ID {
			t.Errorf("the policy selects %v, not the workspace's Pod", s.PodSelector.MatchLabels)
		}
		var internet, coder bool
		for _, e := range s.Egress {
			for _, to := range e.To {
				if to.IPBlock == nil {
					continue
				}
				switch to.IPBlock.CIDR {
				case "0.0.0.0/0":
					internet = slices.Contains(to.IPBlock.Except, "10.0.0.0/8") && slices.Contains(to.IPBlock.Except, "169.254.0.0/16")
				case k.gateway + "/32":
					coder = true
				}
			}
		}
		if !internet || !coder {
			t.Errorf("egress to the internet but private networks: %v; to Coder's address: %v", internet, coder)
		}
	})

	step(t, "the NetworkPolicy is enforced: a Pod in another namespace cannot reach the workspace's Pod; without the policy it can", func(t *testing.T) {
		// Something listening in the workspace's Pod: git's own daemon.
		if _, err := h.inPod(k, p, "git daemon --detach --listen=0.0.0.0 --port=9418 --base-path=/tmp --reuseaddr"); err != nil {
			t.Fatal(err)
		}
		ip := strings.TrimSpace(h.mustKubectl(k, "-n", kubeNamespace, "get", "pod", p, "-o", "jsonpath={.status.podIP}"))
		h.mustKubectlIn(k, `{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "e2e-probe"}}`, "apply", "-f", "-")
		defer h.mustKubectl(k, "delete", "namespace", "e2e-probe", "--wait=false")
		h.pullSecret(k, "e2e-probe")
		h.mustKubectlIn(k, fmt.Sprintf(`{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe", "namespace": "e2e-probe"},
"spec": {"automountServiceAccountToken": false, "imagePullSecrets": [{"name": "ghcr-pull"}], "terminationGracePeriodSeconds": 1,
 "containers": [{"name": "c", "image": %q, "command": ["sleep", "600"], "securityContext": {"allowPrivilegeEscalation": false}}]}}`, base), "apply", "-f", "-")
		h.mustKubectl(k, "-n", "e2e-probe", "wait", "--for=condition=Ready", "pod/probe", "--timeout=2m")
		// curl's exit: 52 or 56, it connected and git's daemon hung up at
		// the HTTP request; 7 or 28, refused or dropped on the way.
		probe := func() string {
			out, _ := h.kubectl(k, "", "-n", "e2e-probe", "exec", "probe", "--", "sh", "-c",
				"curl -sS -o /dev/null --connect-timeout 5 --max-time 10 http://"+ip+":9418/ 2>/dev/null; echo $?")
			return strings.TrimSpace(out)
		}
		if rc := probe(); rc != "7" && rc != "28" {
			t.Errorf("with the policy in place the probe's curl exited %s, want 7 or 28 (no connection)", rc)
		}
		np := strings.TrimSpace(h.mustKubectl(k, "-n", kubeNamespace, "get", "networkpolicies", "-l", "com.coder.workspace.id="+w.ID, "-o", "name"))
		h.mustKubectl(k, "-n", kubeNamespace, "delete", np)
		deadline := time.Now().Add(time.Minute)
		for rc := probe(); rc != "52" && rc != "56"; rc = probe() {
			if time.Now().After(deadline) {
				t.Fatalf("without the policy the probe still cannot connect (curl %s): the test cannot tell an enforced policy from a broken probe", rc)
			}
			time.Sleep(2 * time.Second)
		}
		t.Logf("without the policy the probe connects; the next build puts the policy back")
	})

	step(t, "a Pod without the pull Secret cannot pull the image", func(t *testing.T) {
		probe := fmt.Sprintf(`{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "e2e-no-pull-secret"},
"spec": {"automountServiceAccountToken": false, "restartPolicy": "Never",
 "containers": [{"name": "c", "image": %q, "imagePullPolicy": "Always", "command": ["/bin/true"],
  "securityContext": {"allowPrivilegeEscalation": false}}]}}`, base)
		h.mustKubectlIn(k, probe, "-n", kubeNamespace, "apply", "-f", "-")
		defer h.mustKubectl(k, "-n", kubeNamespace, "delete", "pod", "e2e-no-pull-secret", "--wait=false")
		deadline := time.Now().Add(2 * time.Minute)
		for {
			var pd pod
			if err := json.Unmarshal([]byte(h.mustKubectl(k, "-n", kubeNamespace, "get", "pod", "e2e-no-pull-secret", "-o", "json")), &pd); err != nil {
				t.Fatal(err)
			}
			if cs := pd.Status.ContainerStatuses; len(cs) == 1 && cs[0].State.Waiting != nil &&
				(cs[0].State.Waiting.Reason == "ErrImagePull" || cs[0].State.Waiting.Reason == "ImagePullBackOff") {
				msg := cs[0].State.Waiting.Message
				if !strings.Contains(strings.ToLower(msg), "unauthorized") && !strings.Contains(msg, "401") {
					t.Errorf("the pull failed, but not for want of credentials: %s", msg)
				}
				t.Logf("without the Secret: %s: %s", cs[0].State.Waiting.Reason, tail(msg, 200))
				break
			}
			if pd.Status.Phase == "Succeeded" || pd.Status.Phase == "Running" {
				t.Fatalf("a Pod without the pull Secret ran the image: the registry's password protects nothing")
			}
			if time.Now().After(deadline) {
				t.Fatalf("the Pod without the pull Secret neither ran nor failed to pull within 2m: %+v", pd.Status)
			}
			time.Sleep(time.Second)
		}
	})

	const logPath = "/home/joshsymonds/.local/state/egoagent/egoagent.log"
	stops := func(p string) int {
		out, err := h.inPod(k, p, "cat "+logPath)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(out, `"stopping"`)
	}
	pvcUID := func() string {
		return strings.TrimSpace(h.mustKubectl(k, "-n", kubeNamespace, "get", "pvc", claim, "-o", "jsonpath={.metadata.uid}"))
	}
	step(t, "stop then start: the home survives on its claim, egoagent stopped cleanly, one daemon", func(t *testing.T) {
		const file = ".e2e-before-stop"
		if _, err := h.inPod(k, p, "echo "+h.runID+" >/home/joshsymonds/"+file); err != nil {
			t.Fatal(err)
		}
		before, uid := stops(p), pvcUID()
		if _, err := h.coder(5*time.Minute, "stop", ws, "--yes"); err != nil {
			t.Fatal(err)
		}
		h.waitNoPod(k, w.ID)
		// What a stopped workspace keeps: its claim, and the policy that
		// is only a rule about Pods.
		kept := h.namespaceObjects(k, w.ID)
		if !slices.Contains(kept, "persistentvolumeclaim/"+claim) {
			t.Errorf("the stopped workspace lost its claim %s: %v", claim, kept)
		}
		for _, o := range kept {
			if !strings.HasPrefix(o, "persistentvolumeclaim/") && !strings.HasPrefix(o, "networkpolicy.networking.k8s.io/") {
				t.Errorf("the stopped workspace keeps %s", o)
			}
		}
		t0 := time.Now()
		if _, err := h.coder(10*time.Minute, "start", ws, "--yes"); err != nil {
			t.Fatal(err)
		}
		w, ag = h.waitReady(ws, 10*time.Minute)
		t.Logf("start to agent ready in %s", time.Since(t0).Round(time.Millisecond))
		p = h.podOf(k, w.ID)
		checkStarted(t, p, w, ag)
		if out, err := h.inPod(k, p, "cat /home/joshsymonds/"+file); err != nil || strings.TrimSpace(out) != h.runID {
			t.Errorf("the file written before stop: %q, %v", out, err)
		}
		if got := pvcUID(); got != uid {
			t.Errorf("the claim was made anew (uid %s, was %s)", got, uid)
		}
		// The policy the enforcement step deleted is back: the builds keep
		// it as the template declares it.
		if np := strings.Fields(h.mustKubectl(k, "-n", kubeNamespace, "get", "networkpolicies", "-l", "com.coder.workspace.id="+w.ID, "-o", "name")); len(np) != 1 {
			t.Errorf("after stop and start the workspace has NetworkPolicies %v, want its one", np)
		}
		if after := stops(p); after != before+1 {
			t.Errorf("egoagent's log shows %d clean stops after the stop, want %d", after, before+1)
		}
		checkSecret(t, p, secretV1)
		h.checkKubeToken(t, k, ws, p)
	})

	step(t, "a template update keeps the claim and its files", func(t *testing.T) {
		uid := pvcUID()
		// Version 2: one more egress destination.
		v2 := append(slices.Clone(vars[:len(vars)-1]), fmt.Sprintf(`"egress_cidrs=[""%s/32"",""%s/32""]"`, k.gateway, d.gateway))
		h.pushStaged(tmpl, h.stageTemplate(tmpl, tmpl+"-v2", nil), v2...)
		if _, err := h.coder(10*time.Minute, "update", ws); err != nil {
			t.Fatal(err)
		}
		w, ag = h.waitReady(ws, 10*time.Minute)
		p = h.podOf(k, w.ID)
		if got := pvcUID(); got != uid {
			t.Errorf("after the update the claim was made anew (uid %s, was %s)", got, uid)
		}
		if out, err := h.inPod(k, p, "cat /home/joshsymonds/.e2e-before-stop"); err != nil || strings.TrimSpace(out) != h.runID {
			t.Errorf("after the update the home lost its file: %q, %v", out, err)
		}
		checkSecret(t, p, secretV1)
	})

	step(t, "delete: nothing of the workspace is left in the namespace; the owner's Secrets stay", func(t *testing.T) {
		h.deleteNow(ws)
		deadline := time.Now().Add(2 * time.Minute)
		for {
			left := h.namespaceObjects(k, w.ID)
			if len(left) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after delete the namespace still holds %v", left)
			}
			time.Sleep(time.Second)
		}
		for _, s := range []string{"ghcr-pull", "egoengine-op-token"} {
			if _, err := h.kubectl(k, "", "-n", kubeNamespace, "get", "secret", s); err != nil {
				t.Errorf("the owner's Secret %s went with the workspace: %v", s, err)
			}
		}
		// The stand-in's local volume is Retain-ed: released, not reused.
		out := h.mustKubectl(k, "get", "pv", "-o", "jsonpath={range .items[*]}{.status.phase} {.spec.claimRef.name}{\"\\n\"}{end}")
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if strings.HasSuffix(line, " "+claim) && !strings.HasPrefix(line, "Released") {
				t.Errorf("the deleted workspace's volume is %q, want Released", line)
			}
		}
	})
}

func (h *harness) mustKubectlIn(k kubeRun, stdin string, args ...string) string {
	h.t.Helper()
	out, err := h.kubectl(k, stdin, args...)
	if err != nil {
		h.t.Fatal(h.masked(err.Error()))
	}
	return out
}

// pullSecret makes the Secret ghcr-pull in namespace, with the registry's
// password: a docker config file made, given to kubectl, removed.
func (h *harness) pullSecret(k kubeRun, namespace string) {
	t := h.t
	dockerConfig := filepath.Join(h.runDir, "tmp", "dockerconfig.json")
	auth := base64.StdEncoding.EncodeToString([]byte(k.regUser + ":" + k.regPassword))
	writeFile(t, dockerConfig, fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, k.registry, auth))
	h.mustKubectl(k, "-n", namespace, "create", "secret", "generic", "ghcr-pull", "--type", "kubernetes.io/dockerconfigjson", "--from-file", ".dockerconfigjson="+dockerConfig)
	if err := os.Remove(dockerConfig); err != nil {
		t.Fatal(err)
	}
}

// waitNoPod waits until the workspace has no Pod at all.
func (h *harness) waitNoPod(k kubeRun, wsID string) {
	h.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for strings.TrimSpace(h.mustKubectl(k, "-n", kubeNamespace, "get", "pods", "-l", "com.coder.workspace.id="+wsID, "-o", "name")) != "" {
		if time.Now().After(deadline) {
			h.t.Fatalf("the workspace's Pod is still there 3m after the stop")
		}
		time.Sleep(time.Second)
	}
}

// checkKubeToken: the token is in the owner's Secret and the daemon's
// environment; not in the Pod's or the Deployment's spec, any file of the
// container, Coder's API views (the Terraform state among them: the
// template names the Secret, never its value), the agent's logs, the
// metadata stream or Coder's log.
func (h *harness) checkKubeToken(t *testing.T, k kubeRun, ws, p string) {
	t.Helper()
	got, err := h.kubectl(k, "", "-n", kubeNamespace, "get", "secret", "egoengine-op-token", "-o", "jsonpath={.data.token}")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := base64.StdEncoding.DecodeString(got); err != nil || string(v) != h.token {
		t.Errorf("the Secret egoengine-op-token does not hold the token (%d bytes, %v)", len(v), err)
	}
	// As joshsymonds: root in the container has no CAP_SYS_PTRACE, which
	// reading another user's environ needs.
	environ, err := h.inPod(k, p, `setpriv --reuid=1000 --regid=1000 --clear-groups cat "/proc/$(sed -n 's/.*"pid"[[:space:]]*:[[:space:]]*\([0-9][0-9]*\).*/\1/p' /home/joshsymonds/.local/state/egoagent/daemon.json | head -n 1)/environ"`)
	if err != nil {
		t.Fatal(h.masked(err.Error()))
	}
	daemonToken := ""
	for _, kv := range splitNUL([]byte(environ)) {
		if v, ok := strings.CutPrefix(kv, "OP_SERVICE_ACCOUNT_TOKEN="); ok {
			daemonToken = v
		}
	}
	if daemonToken != h.token {
		t.Errorf("egoagent's daemon has an OP_SERVICE_ACCOUNT_TOKEN of %d characters, want the Secret's (%d)", len(daemonToken), len(h.token))
	}
	for _, obj := range []string{"pod/" + p, "deployments", "replicasets", "networkpolicies", "persistentvolumeclaims"} {
		out := h.mustKubectl(k, "-n", kubeNamespace, "get", obj, "-o", "json")
		if where, found := leakIn("kubectl get "+obj, []byte(out), h.tokenSecrets...); found {
			t.Errorf("token leaked: %s", where)
		}
	}
	if out, err := h.kubectl(k, "", "-n", kubeNamespace, "logs", p, "-c", "dev"); err != nil {
		t.Error(err)
	} else if where, found := leakIn("kubectl logs", []byte(out), h.tokenSecrets...); found {
		t.Errorf("token leaked: %s", where)
	}
	// No file in the container holds it; the search is shown to find it.
	patterns := strings.Join(h.tokenSecrets, "\n") + "\n"
	grep := func() string {
		out, err := h.kubectl(k, patterns, "-n", kubeNamespace, "exec", "-i", p, "-c", "dev", "--", "sh", "-c",
			"grep -rlF -f /dev/stdin / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev 2>/dev/null; true")
		if err != nil {
			t.Fatal(h.masked(err.Error()))
		}
		return strings.TrimSpace(out)
	}
	if _, err := h.kubectl(k, h.token, "-n", kubeNamespace, "exec", "-i", p, "-c", "dev", "--", "sh", "-c", "cat >/tmp/e2e-token-probe"); err != nil {
		t.Fatal(h.masked(err.Error()))
	}
	if got := grep(); got != "/tmp/e2e-token-probe" {
		t.Fatalf("the search in the Pod does not find the token where it was put: %q", got)
	}
	if _, err := h.inPod(k, p, "rm /tmp/e2e-token-probe"); err != nil {
		t.Fatal(err)
	}
	if got := grep(); got != "" {
		t.Errorf("files in the Pod hold the token: %s", got)
	}
	// The Terraform state among them: the template names the Secret, never
	// its value.
	wsv := h.workspace(ws)
	h.checkCoderViews(t, ws, "/api/v2/workspacebuilds/"+wsv.LatestBuild.ID+"/state")
}
