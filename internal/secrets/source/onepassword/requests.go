package onepassword

import (
	"context"
	"net/http"
	"sync/atomic"
)

// CountRequests makes http.DefaultClient, through which the SDK's core sends
// every HTTP request (the extism host function uses it at request time),
// count the requests it carries, and returns a function that reports the
// count. The reachability probe (see Client.probe) is not counted: it is a
// HEAD of the web root, not an API request.
//
// The count is what 1Password's rate limits see: a sign-in is four
// requests, and one ResolveAll is several (see Client.Fetch). Call it once
// per process, before the first request; the 1Password helper does so at
// start and hands the result to New as Options.Requests.
func CountRequests() func() int {
	c := &countingTransport{next: http.DefaultClient.Transport}
	if c.next == nil {
		c.next = http.DefaultTransport
	}
	client := *http.DefaultClient
	client.Transport = c
	http.DefaultClient = &client
	return func() int { return int(c.n.Load()) }
}

type countingTransport struct {
	next http.RoundTripper
	n    atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Context().Value(probeKey{}) == nil {
		c.n.Add(1)
	}
	return c.next.RoundTrip(r)
}

// probeKey marks the probe's request, which CountRequests leaves out.
type probeKey struct{}

func probeContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, probeKey{}, true)
}
