package onepassword

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
)

// sdkAllowedDomains are the domains SDK v0.4.1 lets its core send requests
// to (internal/extism_core.go, allowed1PHosts: "*.<domain>"). A sign-in
// address outside them makes the SDK's HTTP host function panic, which
// damages the core like a network error does (see ready), so it is refused
// here first. The list belongs to the pinned SDK: update it with the SDK.
var sdkAllowedDomains = []string{
	"1password.com", "1password.ca", "1password.eu",
	"b5staging.com", "b5dev.com", "b5dev.ca", "b5dev.eu",
	"b5test.com", "b5test.ca", "b5test.eu", "b5rev.com", "b5local.com",
}

// signInHost returns the host of a token's sign-in address, which may come
// with a scheme, a port or a path.
func signInHost(addr string) string {
	if _, rest, ok := strings.Cut(addr, "://"); ok {
		addr = rest
	}
	addr, _, _ = strings.Cut(addr, "/")
	if h, _, err := net.SplitHostPort(addr); err == nil {
		addr = h
	}
	return strings.ToLower(addr)
}

func sdkAllowsHost(host string) bool {
	for _, d := range sdkAllowedDomains {
		if strings.HasSuffix(host, "."+d) {
			return true
		}
	}
	return false
}

// probe checks that the token's sign-in host answers HTTPS at all, with a
// HEAD of its web root through the same HTTP client the SDK uses (so the
// same proxy settings and, with keep-alive, often the same connection). Any
// HTTP answer will do; only a network failure stops the pass. It is not an
// API request and is not counted in Calls.
//
// A token that does not decode has no address to probe: the SDK rejects it
// without any network traffic, and so without harm.
func (o *Client) probe(ctx context.Context) *Error {
	if o.noProbe || o.signIn == "" {
		return nil
	}
	host := signInHost(o.signIn)
	if !sdkAllowsHost(host) {
		return &Error{Class: ClassInvalidToken,
			Msg: fmt.Sprintf("the sign-in address in %s (%q) is not a 1Password server; copy the whole token (it starts with ops_), or create a new one, and %s", TokenEnv, o.signIn, giveToken)}
	}
	cctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(probeContext(cctx), http.MethodHead, "https://"+host+"/", nil)
	if err != nil {
		return o.classify(ctx, cctx, err)
	}
	// The SDK's client, without following redirects: the first answer is
	// proof enough that the network works.
	c := *http.DefaultClient
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		e := o.classify(ctx, cctx, err)
		if e.Class == ClassOther {
			// Whatever it was, the SDK would have met it inside a request.
			e = &Error{Class: ClassUnreachable, Msg: "cannot reach 1Password (" + capDetail(o.scrub.clean(err.Error())) + "); check the workspace's network, DNS and proxy; the installed files stay as they are, and the next pass tries again", Err: e.Err}
		}
		return e
	}
	resp.Body.Close()
	return nil
}
