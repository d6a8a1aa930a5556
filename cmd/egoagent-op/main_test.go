package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veraticus/egoengine/internal/secrets/source"
)

// The test binary doubles as the helper (asHelperEnv), so these tests drive
// the real egoagent-op, with the real SDK, through source.Process, the way
// egoagent does. There is no network here: they stop at errors the SDK
// gives before it would reach 1Password.
const asHelperEnv = "EGOAGENT_OP_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asHelperEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func helper(t *testing.T, token string) *source.Process {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(asHelperEnv, "1")
	if token == "" {
		os.Unsetenv("OP_SERVICE_ACCOUNT_TOKEN")
	} else {
		t.Setenv("OP_SERVICE_ACCOUNT_TOKEN", token)
	}
	p := source.NewProcess(exe)
	t.Cleanup(func() { p.Close() })
	return p
}

var refs = []source.Ref{
	{Vault: "egoengine", Item: "Codex Auth", Field: "auth.json"},
	{Vault: "egoengine", Item: "GitHub", Field: "token"},
}

func TestMissingTokenThroughTheHelper(t *testing.T) {
	t.Setenv("OP_SERVICE_ACCOUNT_TOKEN", "") // restored after the test
	p := helper(t, "")
	for _, r := range p.Fetch(context.Background(), refs) {
		if source.ClassOf(r.Err) != source.ClassMissingToken || r.Value != nil {
			t.Fatalf("%s: %v (%s)", r.Ref, r.Err, source.ClassOf(r.Err))
		}
		if !strings.Contains(r.Err.Error(), "OP_SERVICE_ACCOUNT_TOKEN") {
			t.Fatalf("the message does not say what to set: %v", r.Err)
		}
	}
	if _, err := p.Documents(context.Background(), "egoengine", "home/"); source.ClassOf(err) != source.ClassMissingToken {
		t.Fatalf("documents: %v", err)
	}
}

func TestMalformedTokenThroughTheHelper(t *testing.T) {
	const canary = "ops_CANARY-not-a-real-token-4f9c2e"
	p := helper(t, canary)
	for _, r := range p.Fetch(context.Background(), refs) {
		if source.ClassOf(r.Err) != source.ClassInvalidToken {
			t.Fatalf("%s: %v (%s)", r.Ref, r.Err, source.ClassOf(r.Err))
		}
		if strings.Contains(r.Err.Error(), "CANARY") {
			t.Fatalf("the token is in the error: %v", r.Err)
		}
	}
}

func TestHelperThatCannotStart(t *testing.T) {
	p := source.NewProcess(filepath.Join(t.TempDir(), "egoagent-op"))
	res := p.Fetch(context.Background(), refs[:1])
	if source.ClassOf(res[0].Err) != source.ClassOther || !strings.Contains(res[0].Err.Error(), "cannot start the 1Password helper") {
		t.Fatalf("%v", res[0].Err)
	}
}

// A helper that never answers (a stand-in: a shell script that sleeps) is
// killed when the caller's deadline passes, and the pass hears
// "unreachable".
func TestHelperThatHangs(t *testing.T) {
	script := filepath.Join(t.TempDir(), "egoagent-op")
	os.WriteFile(script, []byte("#!/bin/sh\nexec sleep 60\n"), 0o700)
	p := source.NewProcess(script)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	begin := time.Now()
	res := p.Fetch(ctx, refs)
	if time.Since(begin) > 10*time.Second {
		t.Fatal("Fetch did not return at its deadline")
	}
	if source.ClassOf(res[0].Err) != source.ClassUnreachable || source.ClassOf(res[1].Err) != source.ClassUnreachable {
		t.Fatalf("%v / %v", res[0].Err, res[1].Err)
	}
}

func TestHelperRefusesArguments(t *testing.T) {
	exe, _ := os.Executable()
	p := source.NewProcess(exe, "--token", "x")
	t.Setenv(asHelperEnv, "1")
	res := p.Fetch(context.Background(), refs[:1])
	if res[0].Err == nil || !strings.Contains(res[0].Err.Error(), "stopped answering") {
		t.Fatalf("%v", res[0].Err)
	}
}
