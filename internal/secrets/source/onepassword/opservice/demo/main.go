// Command opservice runs the demo against a local stand-in for the 1Password
// service, without an account: `make run-1password` (scripts/demo.sh
// --1password). It is test support, not a shipped binary.
//
// It starts internal/secrets/source/onepassword/opservice on a loopback port, puts
// the demo's values in its vault "egoengine" (read from the folder
// scripts/demo.sh writes for the default demo: the Codex login as a file
// attached to the item "Codex Auth", the GitHub token as a concealed field,
// the greeting as the Document "home/.config/demo/greeting.txt"), mints a
// service account token for this run, and runs `egoagent sync`, `status` and
// `metadata` with kind = "1password" and the helper built with the tag
// egoagent_optest: the real helper and the real 1Password SDK, signing in
// and fetching over HTTPS from the stand-in.
//
// The token goes to egoagent in its environment only and is never printed:
// egoagent's output is checked for it before it is shown.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/veraticus/egoengine/internal/secrets/source/onepassword/opservice"
)

func main() {
	os.Exit(run())
}

func run() int {
	vaultDir := flag.String("vault", "bin/demo-vault/egoengine", "the demo's vault folder, as scripts/demo.sh writes it")
	home := flag.String("home", "bin/demo-1password/home", "the workspace home to sync into")
	config := flag.String("config", "demo/config-1password.toml", "egoagent's configuration")
	egoagent := flag.String("egoagent", "bin/egoagent", "the egoagent binary")
	helper := flag.String("helper", "bin/optest/egoagent-op", "egoagent-op built with -tags egoagent_optest")
	flag.Parse()
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "demo-opservice:", err)
		return 1
	}

	values := map[string][]byte{}
	for _, rel := range []string{"Codex Auth/auth.json", "GitHub/token", "home/.config/demo/greeting.txt"} {
		b, err := os.ReadFile(filepath.Join(*vaultDir, rel))
		if err != nil {
			return fail(fmt.Errorf("%v (scripts/demo.sh writes the demo's vault)", err))
		}
		values[rel] = b
	}
	items := []opservice.Item{
		{Title: "Codex Auth", Category: opservice.SecureNote,
			Sections: []opservice.Section{{Files: []opservice.File{{Name: "auth.json", Content: values["Codex Auth/auth.json"]}}}}},
		// A field holds no trailing newline, as typed into 1Password.
		{Title: "GitHub",
			Fields: []opservice.Field{{Title: "token", Value: strings.TrimSuffix(string(values["GitHub/token"]), "\n"), Concealed: true}}},
		{Title: "home/.config/demo/greeting.txt", Category: opservice.Document,
			Document: &opservice.File{Name: "greeting.txt", Content: values["home/.config/demo/greeting.txt"]}},
	}

	svc, err := opservice.Start("")
	if err != nil {
		return fail(err)
	}
	defer svc.Close()
	svc.AddVault(opservice.Vault{Name: "egoengine", Items: items})

	tmp, err := os.MkdirTemp("", "demo-opservice")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(tmp)
	cert := filepath.Join(tmp, "service.pem")
	if err := os.WriteFile(cert, svc.CertPEM(), 0o600); err != nil {
		return fail(err)
	}
	for _, p := range []*string{home, config, egoagent, helper} {
		if *p, err = filepath.Abs(*p); err != nil {
			return fail(err)
		}
	}

	fmt.Printf("A local stand-in for 1Password listens on %s (loopback only), as %s.\n", svc.Addr(), svc.Host)
	fmt.Println("Its vault \"egoengine\" holds the demo's values; a service account token was minted for this run")
	fmt.Println("and is given to egoagent in its environment (never shown). egoagent runs the real helper and")
	fmt.Printf("1Password SDK: %s, built with -tags egoagent_optest.\n", *helper)

	// The child's environment: this one, without anything egoagent would
	// take from it instead, and the demo's.
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OP_") && !strings.HasPrefix(kv, "EGOAGENT_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	env = append(env, "HOME="+*home, "EGOAGENT_CONFIG="+*config, "EGOAGENT_OP_HELPER="+*helper,
		"EGOAGENT_OPTEST_ADDR="+svc.Addr(), "EGOAGENT_OPTEST_CERT="+cert, "OP_SERVICE_ACCOUNT_TOKEN="+svc.Token())
	secrets := svc.TokenSecrets()

	for _, cmd := range []string{"sync", "status", "metadata"} {
		fmt.Printf("\n$ %s %s\n", *egoagent, cmd)
		c := exec.Command(*egoagent, cmd)
		c.Env = env
		out, err := c.CombinedOutput()
		for _, s := range secrets {
			if bytes.Contains(out, []byte(s)) {
				return fail(fmt.Errorf("egoagent %s printed the token; its output is withheld", cmd))
			}
		}
		os.Stdout.Write(out)
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fail(fmt.Errorf("egoagent %s: exit %d", cmd, ee.ExitCode()))
		} else if err != nil {
			return fail(err)
		}
		if cmd == "sync" {
			// Each route once, in the order the pass first used it.
			counts, seen := svc.Requests(), map[string]bool{}
			fmt.Printf("\nThe stand-in answered %d HTTP requests in that pass:\n", svc.Total())
			for _, r := range svc.Log() {
				if !seen[r] && r != opservice.RouteProbe {
					seen[r] = true
					fmt.Printf("  %2d  %s\n", counts[r], r)
				}
			}
		}
	}
	return 0
}
