package opservice

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The service's own plumbing, without the SDK: counting by route, faults
// that run out, and refusal of routes it does not have.
func TestFaultsAndCounts(t *testing.T) {
	s, err := Start("")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tr := s.Transport()
	// A new connection per request: net/http sends a GET again by itself
	// when a kept-alive connection is reset, which would count twice.
	tr.DisableKeepAlives = true
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := c.Get("https://" + s.Host + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Retry-After") + " " + string(b)
	}
	s.Fail(RouteVaults, Fault{Status: 429, RetryAfter: "60", Times: 1})
	if code, body := get("/api/v1/vaults?attrs=combined-access"); code != 429 || !strings.HasPrefix(body, "60 ") {
		t.Errorf("first request: %d %q, want 429 with Retry-After 60", code, body)
	}
	// The fault ran out: without a session the route refuses.
	if code, _ := get("/api/v1/vaults?attrs=combined-access"); code != 401 {
		t.Errorf("second request: %d, want 401", code)
	}
	s.Fail(RouteKeysets, Fault{Reset: true})
	if code, msg := get("/api/v2/account/keysets"); code != 0 {
		t.Errorf("reset: %d %s", code, msg)
	}
	s.Fail(RouteKeysets, Fault{Malformed: true})
	if code, body := get("/api/v2/account/keysets"); code != 200 || strings.Contains(body, `"data"`) {
		t.Errorf("malformed: %d %q", code, body)
	}
	if code, _ := get("/api/v9/nothing"); code != 501 {
		t.Errorf("an unknown route: %d, want 501", code)
	}
	want := map[string]int{RouteVaults: 2, RouteKeysets: 2, RouteUnknown: 1}
	for r, n := range want {
		if s.Requests()[r] != n {
			t.Errorf("%s counted %d, want %d: %v", r, s.Requests()[r], n, s.Requests())
		}
	}
	if s.Total() != 5 {
		t.Errorf("Total %d, want 5: %v", s.Total(), s.Log())
	}
	defer func() {
		if recover() == nil {
			t.Error("Fail accepted a route the service does not have")
		}
	}()
	s.Fail("GET /api/v1/vault", Fault{Status: 500})
}
