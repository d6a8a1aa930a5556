// Command egoagent-op is egoagent's 1Password helper. egoagent starts it for
// the length of a pass and speaks to it over stdin and stdout (see
// source.Process); it is the only program here that links the 1Password
// SDK, and the one that calls Codex's token endpoint when egoagent renews a
// login (package renew/endpoint), so that egoagent carries no HTTP client. It reads the service-account token from OP_SERVICE_ACCOUNT_TOKEN and
// takes no arguments, so that nothing secret is ever on a command line.
package main

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/veraticus/egoengine/internal/health/printable"
	"github.com/veraticus/egoengine/internal/secrets/renew"
	"github.com/veraticus/egoengine/internal/secrets/renew/endpoint"
	"github.com/veraticus/egoengine/internal/secrets/source"
	"github.com/veraticus/egoengine/internal/secrets/source/onepassword"
)

// helperSource is the 1Password source, which also renews Codex logins (renew =
// true) for egoagent, which links no HTTP client of its own.
type helperSource struct{ *onepassword.Client }

// tokenClient calls the token endpoint. It is not http.DefaultClient, which
// carries the SDK's requests (and in test builds goes only to the test's
// 1Password service), so the endpoint's calls are neither counted as
// 1Password requests nor sent there.
var tokenClient = &http.Client{}

// RefreshLogin renews current at Codex's token endpoint, or where
// CODEX_REFRESH_TOKEN_URL_OVERRIDE points, as for Codex.
func (h helperSource) RefreshLogin(ctx context.Context, current []byte) ([]byte, error) {
	url := cmp.Or(os.Getenv(renew.TokenURLEnv), renew.DefaultTokenURL)
	return endpoint.Refresh(ctx, tokenClient, url, current, time.Now)
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if len(os.Args) > 1 {
		if os.Args[1] == "version" {
			fmt.Println("egoagent-op", version)
			return
		}
		fmt.Fprintln(os.Stderr, "egoagent-op: egoagent's 1Password helper takes no arguments; egoagent runs it")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// The helper owns the HTTP client the SDK sends through, so it can count
	// the real requests of a pass; egoagent receives them with every answer.
	// It lives for one pass, so the source may share what it has read
	// between the pass's requests (OnePass).
	src, err := onepassword.New(ctx, onepassword.Options{Version: version, Requests: onepassword.CountRequests(), OnePass: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "egoagent-op:", printable.Text(err.Error())) // it joins a terminal or the log
		os.Exit(1)
	}
	if err := source.Serve(ctx, os.Stdin, os.Stdout, helperSource{src}); err != nil {
		fmt.Fprintln(os.Stderr, "egoagent-op:", printable.Text(err.Error())) // it joins a terminal or the log
		os.Exit(1)
	}
}
