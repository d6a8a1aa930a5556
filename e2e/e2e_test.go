package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veraticus/egoengine/internal/secrets/source/onepassword/opservice"
)

const (
	wsName = "e2e"
	// The template's metadata interval (main.tf), which bounds how soon
	// changes show. egoagent's schedule is hourly, the shortest the
	// 1Password source allows: passes here come from egoagent refresh and
	// the daemon's retries.
	metadataInterval = 5 * time.Second
	// The daemon's retry of an unreachable source: 15 to 30 s after the
	// first failure, 30 to 60 s after a second (internal/secrets/daemon/planner.go).
	retryWithin = 60 * time.Second
	// Slack for the agent's report to the server and the server's push.
	apiSlack = 5 * time.Second
	// A pass with a cold helper: the SDK's core loads, signs in, fetches
	// (about 5 s on two busy cores).
	passTime = 10 * time.Second
)

// The Codex secret's content in the service, before and after a rotation:
// a file attached to the item "Codex Auth" (op://egoengine/Codex Auth/auth.json),
// as the owner keeps it. Byte for byte, CRLF, non-ASCII and a missing final
// newline included; both pass egoagent's json check.
const (
	secretV1 = "{\"OPENAI_API_KEY\":\"sk-e2e-first\",\"tokens\":null,\"note\":\"d\u00e9j\u00e0 vu\"}\r\n"
	secretV2 = `{"OPENAI_API_KEY":"sk-e2e-rotated","tokens":{"id_token":"e2e"}}`
)

// codexItem is the 1Password item that holds content as auth.json.
func codexItem(content string) opservice.Item {
	return opservice.Item{Title: "Codex Auth", Category: opservice.SecureNote, Sections: []opservice.Section{{
		Files: []opservice.File{{Name: "auth.json", Content: []byte(content)}},
	}}}
}

// TestEndToEnd drives one workspace through its life on a real Coder and
// checks each promise of issue 7 on the way; see docs/e2e.md.
func TestEndToEnd(t *testing.T) {
	h := newHarness(t)
	// Cleanups run last-registered first: workspace, Coder, PostgreSQL, the
	// 1Password service, then this check that nothing of the run is left.
	t.Cleanup(h.checkNothingLeft)

	h.startService()
	h.svc.AddVault(opservice.Vault{Name: "egoengine", Items: []opservice.Item{codexItem(secretV1)}})
	h.startPostgres()
	h.startCoder()
	h.login()
	stage := h.pushTemplate(templateName, nil)

	start := time.Now()
	if _, err := h.coder(5*time.Minute, "create", wsName, "--template", templateName, "--yes"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.deleteWorkspace(wsName))
	ws, ag := h.waitReady(wsName, 3*time.Minute)
	t.Logf("workspace %s ready in %s (agent %s)", ws.ID, time.Since(start).Round(time.Millisecond), ag.ID)

	wsDir := workspaceDir(h.runDir, ws.ID)
	home := filepath.Join(wsDir, "root", "home", "joshsymonds")
	secretFile := filepath.Join(home, ".codex", "auth.json")

	step(t, "agent connects and the egoagent start script succeeds", func(t *testing.T) {
		if ag.Directory != home {
			t.Errorf("agent folder %q, want the workspace home %q", ag.Directory, home)
		}
		want, err := os.ReadFile(filepath.Join(h.repo, "coder-templates", "modules", "egoengine-agent", "egoagent-start.sh"))
		if err != nil {
			t.Fatal(err)
		}
		var script *agentScript
		for i := range ag.Scripts {
			if ag.Scripts[i].DisplayName == "egoagent" {
				script = &ag.Scripts[i]
			}
		}
		switch {
		case script == nil:
			t.Fatalf("the agent has no script named egoagent; scripts: %+v", ag.Scripts)
		case script.Script != string(want):
			t.Errorf("the agent's egoagent script is not the shared module's egoagent-start.sh")
		case !script.RunOnStart || !script.StartBlocksLogin:
			t.Errorf("egoagent script: run_on_start=%v start_blocks_login=%v, want both", script.RunOnStart, script.StartBlocksLogin)
		}

		timing := h.scriptTiming(ws.LatestBuild.ID, "egoagent")
		if timing.Status != "ok" || timing.ExitCode != 0 {
			t.Errorf("egoagent start script: status %q exit %d, want ok 0; agent logs:\n%s", timing.Status, timing.ExitCode, h.agentLogText(ag.ID))
		}
		logs := h.agentLogText(ag.ID)
		for _, w := range []string{"$ egoagent image link-home", "linked    ~/.config/e2e/hello", "0 conflicts", "$ egoagent start", "codex: fresh (written)"} {
			if !strings.Contains(logs, w) {
				t.Errorf("the agent's startup log lacks %q; it is:\n%s", w, logs)
			}
		}
		// link-home did its job on the image-root stand-in.
		if target, err := os.Readlink(filepath.Join(home, ".config", "e2e", "hello")); err != nil || !strings.HasPrefix(target, "/nix/store/") {
			t.Errorf("~/.config/e2e/hello: link %q, %v; want a link into /nix/store from image link-home", target, err)
		}

		checkSecretFile(t, secretFile, secretV1)
		h.checkOneDaemon(t, wsDir, home)
		// The value came from the service, through a real sign-in with the
		// token Coder's provisioner gave the workspace.
		h.checkSignedIn(t)

		// What the build log says of the local-exec that was given the token.
		if b, err := h.api("/api/v2/workspacebuilds/" + ws.LatestBuild.ID + "/logs"); err == nil {
			var logs []struct {
				Output string `json:"output"`
			}
			_ = json.Unmarshal(b, &logs)
			for _, l := range logs {
				if strings.Contains(l.Output, "local-exec") || strings.Contains(l.Output, "workspace.sh") {
					t.Logf("build log: %s", l.Output)
				}
			}
		}
	})

	step(t, "egoagent metadata appears through Coder's API, turns stale while 1Password fails and fresh when it recovers", func(t *testing.T) {
		v, took, seen, err := h.watchMetadata(ag.ID, "3_egoagent", metadataInterval+apiSlack, func(v string) bool {
			return strings.HasPrefix(v, "ok: 1 fresh")
		})
		if err != nil {
			t.Fatalf("%v; values seen: %q", err, seen)
		}
		t.Logf("metadata %q after %s", v, took.Round(time.Millisecond))

		// The service answers the vault list with 500 from now on. The
		// schedule is hourly (the 1Password source allows no less): a
		// refresh in the workspace runs the daemon's next pass.
		h.svc.ResetCounts()
		h.svc.Fail(opservice.RouteVaults, opservice.Fault{Status: http.StatusInternalServerError})
		out, err := h.coder(2*time.Minute, "ssh", wsName, "--", "egoagent", "refresh")
		if err == nil || !strings.Contains(out, "codex: stale (unreachable)") {
			t.Errorf("refresh while 1Password fails: want exit 1 and 'codex: stale (unreachable)', got %v: %s", err, out)
		}
		if n := h.svc.Requests()[opservice.RouteVaults]; n == 0 {
			t.Fatalf("no request met the failing route: %v", h.svc.Requests())
		}
		v, took, seen, err = h.watchMetadata(ag.ID, "3_egoagent", metadataInterval+apiSlack, func(v string) bool {
			return strings.HasPrefix(v, "codex stale") && strings.Contains(v, "(unreachable)")
		})
		if err != nil {
			t.Fatalf("while 1Password fails: %v; values seen: %q", err, seen)
		}
		t.Logf("metadata %q %s after the failed pass", v, took.Round(time.Millisecond))
		// The last good copy stays in place.
		checkSecretFile(t, secretFile, secretV1)

		// 1Password recovers; nobody asks for a pass: the daemon's retry
		// after an unreachable source (15 to 30 s after the first failure,
		// 30 to 60 s after a second) brings the metadata back.
		h.svc.Clear()
		h.svc.ResetCounts()
		v, took, seen, err = h.watchMetadata(ag.ID, "3_egoagent", retryWithin+passTime+metadataInterval+apiSlack, func(v string) bool {
			return strings.HasPrefix(v, "ok: 1 fresh")
		})
		if err != nil {
			t.Fatalf("after 1Password recovered: %v; values seen: %q; requests since: %v", err, seen, h.svc.Requests())
		}
		t.Logf("metadata %q %s after 1Password recovered", v, took.Round(time.Millisecond))
		st := readState(t, home)
		switch {
		case st.LastPass == nil || st.LastPass.Trigger != "retry" || !st.LastPass.OK:
			t.Errorf("the pass that recovered: %+v, want an ok pass of trigger retry", st.LastPass)
		case st.LastPass.Calls != h.svc.Total():
			t.Errorf("egoagent counts %d requests for its retry pass, the service saw %d: %v", st.LastPass.Calls, h.svc.Total(), h.svc.Requests())
		default:
			t.Logf("the daemon's retry pass: %d requests to 1Password", st.LastPass.Calls)
		}
		checkSecretFile(t, secretFile, secretV1)
	})

	step(t, "egoagent refresh in the workspace reports the state and brings a value changed in 1Password", func(t *testing.T) {
		// The item gone from the vault: a real not-found from the service.
		h.svc.DeleteItem("egoengine", "Codex Auth")
		out, err := h.coder(2*time.Minute, "ssh", wsName, "--", "egoagent", "refresh")
		if err == nil || !strings.Contains(out, "codex: stale (not-found)") {
			t.Errorf("refresh with the item gone from 1Password: want exit 1 and 'codex: stale (not-found)', got %v: %s", err, out)
		}
		checkSecretFile(t, secretFile, secretV1)

		// The item back with a new value. No pass of the daemon's own comes
		// between (hourly schedule; no retry after not-found): the refresh
		// writes it.
		h.svc.PutItem("egoengine", codexItem(secretV2))
		out, err = h.coder(2*time.Minute, "ssh", wsName, "--", "egoagent", "refresh")
		if err != nil {
			t.Fatalf("egoagent refresh after the change in 1Password: %v", err)
		}
		t.Logf("egoagent refresh: %s", strings.TrimSpace(out))
		if !strings.Contains(out, "codex: fresh (written)") {
			t.Errorf("egoagent refresh printed %q, want codex: fresh (written)", out)
		}
		checkSecretFile(t, secretFile, secretV2)
		stat, err := h.coder(time.Minute, "ssh", wsName, "--", "stat", "-c", "%a", "~/.codex/auth.json")
		if err != nil || strings.TrimSpace(stat) != "600" {
			t.Errorf("stat in the workspace: %q, %v; want 600", stat, err)
		}
		if _, _, seen, err := h.watchMetadata(ag.ID, "3_egoagent", metadataInterval+apiSlack, func(v string) bool {
			return strings.HasPrefix(v, "ok: 1 fresh")
		}); err != nil {
			t.Errorf("metadata after the refresh: %v; values seen: %q", err, seen)
		}
	})

	step(t, "the token given only as TF_VAR_ in the server's environment reaches egoagent", func(t *testing.T) {
		pid := daemonPID(t, home)
		out, err := h.coder(time.Minute, "ssh", wsName, "--", "cat", fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil {
			// The error carries the command's output: the environment.
			t.Fatal(h.masked(err.Error()))
		}
		got := ""
		for _, kv := range splitNUL([]byte(out)) {
			if v, ok := strings.CutPrefix(kv, "OP_SERVICE_ACCOUNT_TOKEN="); ok {
				got = v
			}
		}
		if got != h.token {
			t.Errorf("egoagent daemon (pid %d), read in the workspace: OP_SERVICE_ACCOUNT_TOKEN has %d characters, want the %d of the server's TF_VAR_%s", pid, len(got), len(h.token), tokenVariable)
		}
		// The leak scan below would see it there: it can fail.
		if _, found := leakIn("daemon environ", []byte(out), h.token); !found {
			t.Errorf("the leak scan does not find the token where it is")
		}
	})

	step(t, "the token appears in none of Coder's API answers, script text or logs", func(t *testing.T) {
		h.checkTokenNowhere(t, wsName, stage)
	})

	step(t, "coder stop then coder start: egoagent back, one daemon, secret in place", func(t *testing.T) {
		if _, err := h.coder(5*time.Minute, "stop", wsName, "--yes"); err != nil {
			t.Fatal(err)
		}
		if ps := processesWith(workspaceMarker + "=" + wsDir); len(ps) > 0 {
			t.Errorf("processes of the stopped workspace still run: %v", describe(ps))
		}
		// The home (a volume in the real templates) outlives the stop.
		checkSecretFile(t, secretFile, secretV2)

		if _, err := h.coder(5*time.Minute, "start", wsName, "--yes"); err != nil {
			t.Fatal(err)
		}
		ws, ag = h.waitReady(wsName, 3*time.Minute)
		if ws.LatestBuild.Transition != "start" {
			t.Errorf("latest build is a %s", ws.LatestBuild.Transition)
		}
		timing := h.scriptTiming(ws.LatestBuild.ID, "egoagent")
		if timing.Status != "ok" || timing.ExitCode != 0 {
			t.Errorf("egoagent start script after restart: status %q exit %d", timing.Status, timing.ExitCode)
		}
		h.checkOneDaemon(t, wsDir, home)
		checkSecretFile(t, secretFile, secretV2)
		if _, _, seen, err := h.watchMetadata(ag.ID, "3_egoagent", metadataInterval+apiSlack, func(v string) bool {
			return strings.HasPrefix(v, "ok: 1 fresh")
		}); err != nil {
			t.Errorf("metadata after restart: %v; values seen: %q", err, seen)
		}
		out, err := h.coder(time.Minute, "ssh", wsName, "--", "egoagent", "status", "--json")
		if err != nil {
			t.Fatal(err)
		}
		var st struct {
			Daemon struct {
				PID     int                  `json:"pid"`
				Running bool                 `json:"running"`
				Next    map[string]time.Time `json:"next"`
			} `json:"daemon"`
			Secrets []struct {
				Name, State string
			} `json:"secrets"`
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("egoagent status --json: %v: %s", err, out)
		}
		if !st.Daemon.Running || len(st.Secrets) != 1 || st.Secrets[0].State != "fresh" {
			t.Errorf("egoagent status after restart: %s", out)
		}
		// The schedule goes on by itself: the next pass within the hour.
		if next := st.Daemon.Next["codex"]; !next.After(time.Now()) || next.After(time.Now().Add(time.Hour+time.Minute)) {
			t.Errorf("egoagent status after restart: next refresh of codex at %v, want within the hour: %s", next, out)
		}
		// A new build, the token given again by the provisioner.
		if got := envOf(t, daemonPID(t, home), "OP_SERVICE_ACCOUNT_TOKEN"); got != h.token {
			t.Errorf("after restart the daemon's OP_SERVICE_ACCOUNT_TOKEN is not the server's token (%d characters)", len(got))
		}
		h.checkTokenNowhere(t, wsName, stage)
	})

	step(t, "the leak search finds the token when a template puts it in coder_env", func(t *testing.T) {
		const name = "leaky"
		stage := h.pushTemplate(templateName+"-leaky", map[string]string{"leak.tf": leakyTemplate})
		if _, err := h.coder(5*time.Minute, "create", name, "--template", templateName+"-leaky", "--yes"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(h.deleteWorkspace(name))
		h.waitReady(name, 3*time.Minute)
		leaks := h.tokenLeaks(t, name, stage)
		for _, want := range []string{"GET /api/v2/workspaceagents/", "GET /api/v2/workspacebuilds/"} {
			if !anyHasPrefix(leaks, want) {
				t.Errorf("the token in coder_env was not found in %s...; found in: %q", want, leaks)
			}
		}
		if len(leaks) > 0 {
			t.Logf("with the token in coder_env, it shows in %d places, the first: %s", len(leaks), leaks[0])
		}
		h.deleteNow(name)
	})
}

// checkSignedIn: the workspace's egoagent signed in to the 1Password
// service (the SDK's whole exchange, with the token Coder gave it) and
// downloaded the attachment.
func (h *harness) checkSignedIn(t *testing.T) {
	t.Helper()
	req := h.svc.Requests()
	for _, r := range []string{opservice.RouteAuthStart, opservice.RouteAuthComplete, opservice.RouteVaults, opservice.RouteFile} {
		if req[r] == 0 {
			t.Errorf("the 1Password service saw no %s; requests: %v", r, req)
		}
	}
	clients := h.svc.Clients()
	if len(clients) == 0 {
		t.Fatalf("no sign-in to the 1Password service completed; requests: %v", req)
	}
	t.Logf("the 1Password service so far: %d requests %v; %d sign-ins, the last by %q", h.svc.Total(), req, len(clients), clients[len(clients)-1])
}

func anyHasPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

// step runs one part of the story; a failed part ends the test, since the
// next ones build on it.
func step(t *testing.T, name string, f func(t *testing.T)) {
	t.Helper()
	if !t.Run(name, f) {
		t.FailNow()
	}
}

// workspaceDir is where the template keeps a workspace (main.tf's local.dir).
func workspaceDir(runDir, id string) string {
	return filepath.Join(runDir, "w", id[:8])
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func checkSecretFile(t *testing.T, path, want string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("secret file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("secret file %s has mode %o, want 600", path, fi.Mode().Perm())
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("secret file %s holds %q, want %q", path, got, want)
	}
}

// masked is s with the token and the secrets inside it replaced.
func (h *harness) masked(s string) string {
	for _, secret := range h.tokenSecrets {
		s = strings.ReplaceAll(s, secret, "<TOKEN>")
	}
	return s
}

// readState reads egoagent's state file in the workspace's home.
func readState(t *testing.T, home string) egoState {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(home, ".local", "state", "egoagent", "state.json"))
	if err != nil {
		t.Fatalf("egoagent's state: %v", err)
	}
	var st egoState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("egoagent's state: %v", err)
	}
	return st
}

// egoState is the part of egoagent's state.json this test reads.
type egoState struct {
	LastPass *struct {
		Trigger string `json:"trigger"`
		Calls   int    `json:"calls"`
		OK      bool   `json:"ok"`
	} `json:"last_pass"`
}

func daemonPID(t *testing.T, home string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(home, ".local", "state", "egoagent", "daemon.json"))
	if err != nil {
		t.Fatalf("daemon.json: %v", err)
	}
	var d struct {
		PID int `json:"pid"`
	}
	if err := json.Unmarshal(b, &d); err != nil || d.PID <= 0 {
		t.Fatalf("daemon.json: pid %d, %v: %s", d.PID, err, b)
	}
	return d.PID
}

func envOf(t *testing.T, pid int, name string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatalf("environment of pid %d: %v", pid, err)
	}
	for _, kv := range splitNUL(b) {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}

func describe(ps []process) string {
	var parts []string
	for _, p := range ps {
		parts = append(parts, fmt.Sprintf("%d %s", p.pid, strings.Join(p.argv, " ")))
	}
	return strings.Join(parts, "; ")
}

// checkOneDaemon: exactly one `egoagent run` among the workspace's
// processes, the one daemon.json names.
func (h *harness) checkOneDaemon(t *testing.T, wsDir, home string) {
	t.Helper()
	ds := daemons(processesWith(workspaceMarker+"="+wsDir), h.egoagentBin)
	if len(ds) != 1 {
		t.Fatalf("want one egoagent daemon in the workspace, found %d: %s", len(ds), describe(ds))
	}
	if pid := daemonPID(t, home); ds[0].pid != pid {
		t.Errorf("daemon.json names pid %d, the running daemon is %d", pid, ds[0].pid)
	}
}

// scriptTiming waits for Coder to record how the named agent script ended.
func (h *harness) scriptTiming(buildID, name string) scriptTiming {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var timings struct {
			AgentScriptTimings []scriptTiming `json:"agent_script_timings"`
		}
		h.apiJSON("/api/v2/workspacebuilds/"+buildID+"/timings", &timings)
		for _, s := range timings.AgentScriptTimings {
			if s.DisplayName == name {
				return s
			}
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("no timing recorded for agent script %q of build %s: %+v", name, buildID, timings.AgentScriptTimings)
		}
		time.Sleep(time.Second)
	}
}

// pushTemplate uploads the test template, with the shared agent module
// copied in unchanged, plus extra files (name: content); it returns the
// folder it uploaded.
func (h *harness) pushTemplate(name string, extra map[string]string) string {
	t := h.t
	stage := filepath.Join(h.runDir, "template-"+name)
	if err := copyTree(filepath.Join(h.repo, "e2e", "template"), stage); err != nil {
		t.Fatal(err)
	}
	// The shared module, unchanged, where the template's source points.
	if err := copyTree(filepath.Join(h.repo, "coder-templates", "modules", "egoengine-agent"), filepath.Join(stage, "modules", "egoengine-agent")); err != nil {
		t.Fatal(err)
	}
	for f, content := range extra {
		writeFile(t, filepath.Join(stage, f), content)
	}
	start := time.Now()
	args := []string{"templates", "push", name,
		"--directory", stage, "--yes", "--message", "e2e run " + h.runID,
		"--variable", "workspaces_dir=" + filepath.Join(h.runDir, "w"),
		"--variable", "coder_binary=" + h.coderBin,
		"--variable", "egoagent_binary=" + h.egoagentBin,
		"--variable", "egoagent_op_binary=" + h.opHelperBin,
		"--variable", "optest_addr=" + h.svc.Addr(),
		"--variable", "optest_cert=" + h.svcCert,
	}
	if _, err := h.coder(5*time.Minute, args...); err != nil {
		t.Fatalf("%v\nserver log:\n%s", err, readTail(h.serverLog))
	}
	t.Logf("template %s pushed in %s", name, time.Since(start).Round(time.Millisecond))
	return stage
}

// leakyTemplate is the test template plus the mistake the templates must
// never make: the token in a coder_env, which Coder shows to every viewer.
// The leak scan must catch it, or it proves nothing.
const leakyTemplate = `resource "coder_env" "token" {
  agent_id = module.agent.agent_id
  name     = "OP_SERVICE_ACCOUNT_TOKEN"
  value    = var.op_service_account_token
}
`

// checkTokenNowhere fails the test for each place tokenLeaks finds.
func (h *harness) checkTokenNowhere(t *testing.T, name, stage string) {
	t.Helper()
	for _, l := range h.tokenLeaks(t, name, stage) {
		t.Errorf("token leaked: %s", l)
	}
}

// tokenLeaks searches everything Coder shows about the workspace, the
// uploaded template (script text) and the files its agent and egoagent
// write, for the token, and says where it is.
func (h *harness) tokenLeaks(t *testing.T, name, stage string) []string {
	t.Helper()
	var leaks []string
	ws := h.workspace(name)
	wsDir := workspaceDir(h.runDir, ws.ID)
	home := filepath.Join(wsDir, "root", "home", "joshsymonds")
	// The Terraform state Coder keeps for the build (template admins can
	// download it) is searched too: the template keeps the token out of
	// resource attributes, so it must not be there either.
	paths := append(h.apiViews(name, ws), "/api/v2/workspacebuilds/"+ws.LatestBuild.ID+"/state")
	for _, p := range paths {
		body, err := h.api(p)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if where, found := leakIn("GET "+p, body, h.tokenSecrets...); found {
			leaks = append(leaks, where)
		}
	}

	// The variable is there, marked sensitive, its value not shown.
	var vars []struct {
		Name      string `json:"name"`
		Sensitive bool   `json:"sensitive"`
		Value     string `json:"value"`
	}
	h.apiJSON("/api/v2/templateversions/"+ws.LatestBuild.TemplateVersionID+"/variables", &vars)
	found := false
	for _, v := range vars {
		if v.Name == tokenVariable {
			found = true
			if !v.Sensitive {
				t.Errorf("template variable %s is not marked sensitive", tokenVariable)
			}
			t.Logf("template version variables API shows %s as %q", tokenVariable, v.Value)
		}
	}
	if !found {
		t.Errorf("template version has no variable %s: %+v", tokenVariable, vars)
	}

	// What the metadata stream carries.
	ag, _ := ws.agent()
	_, _, seen, _ := h.watchMetadata(ag.ID, "3_egoagent", 2*time.Second, func(string) bool { return false })
	if where, leaked := leakIn("watch-metadata", []byte(strings.Join(seen, "\n")), h.tokenSecrets...); leaked {
		leaks = append(leaks, where)
	}

	// Script text as uploaded, agent logs and script logs, egoagent's state
	// and log, the start script's log, and Coder's own log.
	files := []string{stage}
	files = append(files, filepath.Join(wsDir, "logs"), filepath.Join(wsDir, "script-data"),
		filepath.Join(home, ".local", "state"), h.serverLog)
	n := 0
	for _, root := range files {
		_ = filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
			if err != nil || !fi.Mode().IsRegular() {
				return nil
			}
			n++
			body, err := os.ReadFile(p)
			if err != nil {
				t.Errorf("reading %s: %v", p, err)
				return nil
			}
			if where, found := leakIn(p, body, h.tokenSecrets...); found {
				leaks = append(leaks, where)
			}
			return nil
		})
	}
	if n < 5 {
		t.Errorf("only %d files searched under %v: the logs are not where this test looks", n, files)
	}
	t.Logf("searched %d API answers, the metadata stream and %d files", len(paths), n)
	return leaks
}

// deleteWorkspace returns the workspace's end, for t.Cleanup: Coder runs
// the template's destroy steps, which stop its processes and remove its
// folder.
func (h *harness) deleteWorkspace(name string) func() {
	return func() { h.deleteNow(name) }
}

func (h *harness) deleteNow(wsName string) {
	t := h.t
	// No Fatal here: the cleanups after this one must still run.
	var ws workspace
	b, err := h.api("/api/v2/users/" + adminUser + "/workspace/" + wsName)
	var se *statusError
	if errors.As(err, &se) && se.code == http.StatusNotFound {
		return // already gone
	}
	if err == nil {
		err = json.Unmarshal(b, &ws)
	}
	if err != nil || ws.ID == "" {
		t.Errorf("finding the workspace to delete it: %v", err)
		return
	}
	wsDir := workspaceDir(h.runDir, ws.ID)
	if _, err := h.coder(5*time.Minute, "delete", wsName, "--yes"); err != nil {
		t.Errorf("deleting the workspace: %v", err)
		return
	}
	if ps := processesWith(workspaceMarker + "=" + wsDir); len(ps) > 0 {
		t.Errorf("processes of the deleted workspace still run: %s", describe(ps))
	}
	if _, err := os.Stat(wsDir); err == nil {
		t.Errorf("the deleted workspace's folder %s is still there", wsDir)
	}
}

// checkNothingLeft runs after Coder and PostgreSQL were stopped: no process
// of this run may remain, no port of it may answer. Whatever is left is
// killed, and the test fails.
func (h *harness) checkNothingLeft() {
	t := h.t
	if left := h.killRun(); len(left) > 0 {
		t.Errorf("processes of this run were still there after teardown (now killed): %s", describe(left))
	}
	host := h.listenHost
	if host == "" {
		host = "127.0.0.1"
	}
	for _, p := range h.ports {
		if portOpen(p) || (host != "127.0.0.1" && portOpenOn(host, p)) {
			t.Errorf("port %d still accepts connections after teardown", p)
		}
	}
	if t.Failed() {
		t.Logf("coder server log (tail):\n%s", readTail(h.serverLog))
	}
}

// apiViews are the Coder API views of workspace name (ws) that show its
// build, agent, template version and logs: where a token a template
// mishandled would show. Both end-to-end tests search them.
func (h *harness) apiViews(name string, ws workspace) []string {
	ag, _ := ws.agent()
	var raw struct {
		TemplateID string `json:"template_id"`
	}
	h.apiJSON("/api/v2/workspaces/"+ws.ID, &raw)
	b, tv := ws.LatestBuild.ID, ws.LatestBuild.TemplateVersionID
	return []string{
		"/api/v2/users/" + adminUser + "/workspace/" + name,
		"/api/v2/workspaces/" + ws.ID,
		"/api/v2/workspaces/" + ws.ID + "/builds",
		"/api/v2/workspacebuilds/" + b,
		"/api/v2/workspacebuilds/" + b + "/resources",
		"/api/v2/workspacebuilds/" + b + "/parameters",
		"/api/v2/workspacebuilds/" + b + "/logs",
		"/api/v2/workspacebuilds/" + b + "/timings",
		"/api/v2/workspaceagents/" + ag.ID,
		"/api/v2/workspaceagents/" + ag.ID + "/logs",
		"/api/v2/templates/" + raw.TemplateID,
		"/api/v2/templateversions/" + tv,
		"/api/v2/templateversions/" + tv + "/rich-parameters",
		"/api/v2/templateversions/" + tv + "/variables",
		"/api/v2/templateversions/" + tv + "/resources",
		"/api/v2/templateversions/" + tv + "/logs",
		// The owner's user secrets: names and targets, never values.
		"/api/v2/users/" + adminUser + "/secrets",
	}
}
