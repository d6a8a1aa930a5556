package onepassword

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/veraticus/egoengine/internal/secrets/source"
	"github.com/veraticus/egoengine/internal/secrets/source/onepassword/opservice"
)

// These tests run the real SDK (its WebAssembly core included) against
// opservice, a local stand-in for the 1Password service that plays the
// SDK's protocol: sign-in, keysets, vaults, items and files, all encrypted
// as the core expects. Traffic stays on loopback: http.DefaultClient, which
// the SDK uses, is swapped for one that dials only the service.

// fixture is what the service holds in these tests.
type fixture struct {
	svc                         *opservice.Service
	vaultID, loginID, keyID     string
	sshID                       string
	binary, big                 []byte
	codex, sshConfig, deepTitle string
}

func startService(t *testing.T) *fixture {
	t.Helper()
	svc, err := opservice.Start("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	old := http.DefaultClient
	tr := svc.Transport()
	http.DefaultClient = &http.Client{Transport: tr}
	t.Cleanup(func() { http.DefaultClient = old; tr.CloseIdleConnections() })

	f := &fixture{svc: svc,
		binary:    []byte("\x00\x01\xff\xfe PNG\r\n\x1a\n\x00 end"),
		big:       make([]byte, 1<<20),
		codex:     `{"tokens":{"refresh_token":"r1"}}` + "\n",
		sshConfig: "Host *\r\n  User me\r\n",
		deepTitle: "home/.config/a/b/c/deep.txt",
	}
	rand.Read(f.big)
	f.keyID = "apikeyfield000000000000001"[:26]
	f.loginID = "loginitem00000000000000001"[:26]
	f.sshID = "sshconfigdocument000000001"[:26]
	f.vaultID = svc.AddVault(opservice.Vault{Name: "egoengine", Items: []opservice.Item{
		{Title: "Codex Auth", Category: opservice.SecureNote, Sections: []opservice.Section{{Title: "", Files: []opservice.File{
			{Name: "auth.json", Content: []byte(f.codex)}}}}},
		{ID: f.loginID, Title: "Login", Fields: []opservice.Field{{Title: "password", Value: "hunter2", Concealed: true}},
			Sections: []opservice.Section{{Title: "api", Fields: []opservice.Field{{ID: f.keyID, Title: "key", Value: "k-123"}}}}},
		{Title: "Files", Sections: []opservice.Section{{Title: "blobs", Files: []opservice.File{
			{Name: "nul.bin", Content: f.binary},
			{Name: "crlf.txt", Content: []byte("a\r\nb\r\n")},
			{Name: "no-newline.txt", Content: []byte("no newline")},
			{Name: "empty", Content: []byte{}},
			{Name: "big.bin", Content: f.big},
		}}}},
		{ID: f.sshID, Title: "home/.ssh/config", Category: opservice.Document, Document: &opservice.File{Name: "config", Content: []byte(f.sshConfig)}},
		{Title: "home/bin.dat", Category: opservice.Document, Document: &opservice.File{Name: "bin.dat", Content: f.binary}},
		{Title: f.deepTitle, Category: opservice.Document, Document: &opservice.File{Name: "deep.txt", Content: []byte("deep\n")}},
		{Title: "Deploy Key", Category: opservice.Document, Document: &opservice.File{Name: "id_ed25519", Content: f.binary}},
		{Title: "notes/elsewhere", Category: opservice.Document, Document: &opservice.File{Name: "x", Content: []byte("x")}},
	}})
	svc.AddVault(opservice.Vault{Name: "work", Items: []opservice.Item{
		{Title: "GitHub", Fields: []opservice.Field{{Title: "token", Value: "ghp_123", Concealed: true}}},
	}})
	return f
}

// serviceSource is a Client signed in with the service's token that counts
// real HTTP requests, as the helper's does.
func serviceSource(t *testing.T, f *fixture, timeout time.Duration) *Client {
	t.Helper()
	if timeout == 0 {
		timeout = 20 * time.Second
	}
	o := newTestOnePassword(t, f.svc.Token(), timeout)
	o.requests = CountRequests()
	o.onePass = true // as in the helper
	return o
}

func ref(t *testing.T, s string) Ref {
	t.Helper()
	r, err := source.ParseRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func noSecretsIn(t *testing.T, f *fixture, texts ...string) {
	t.Helper()
	for _, m := range texts {
		for _, c := range f.svc.TokenSecrets() {
			if strings.Contains(m, c) {
				t.Fatalf("a message holds a secret of the token: %q", m)
			}
		}
	}
}

// TestOnePasswordServiceFetch: every kind of reference comes back byte for
// byte from the real SDK; a missing vault, item or field fails alone.
func TestOnePasswordServiceFetch(t *testing.T) {
	if testing.Short() {
		t.Skip("loads the 1Password SDK's core")
	}
	f := startService(t)
	// As in the helper (one pass, the items API), and with the
	// ResolveAll path that a Client kept across passes uses.
	for _, onePass := range []bool{true, false} {
		t.Run(fmt.Sprintf("onePass=%v", onePass), func(t *testing.T) {
			o := serviceSource(t, f, 0)
			o.onePass = onePass
			fetchEverything(t, f, o)
		})
	}
}

func fetchEverything(t *testing.T, f *fixture, o *Client) {
	want := map[string][]byte{
		"op://egoengine/Codex Auth/auth.json":                 []byte(f.codex),
		"op://egoengine/Login/password":                       []byte("hunter2"),
		"op://egoengine/Login/api/key":                        []byte("k-123"),
		"op://work/GitHub/token":                              []byte("ghp_123"),
		"op://egoengine/Files/nul.bin":                        f.binary,
		"op://egoengine/Files/blobs/crlf.txt":                 []byte("a\r\nb\r\n"),
		"op://egoengine/Files/no-newline.txt":                 []byte("no newline"),
		"op://egoengine/Files/empty":                          {},
		"op://egoengine/Files/big.bin":                        f.big,
		"op://egoengine/" + f.sshID:                           []byte(f.sshConfig),
		"op://egoengine/Deploy Key":                           f.binary,
		"op://" + f.vaultID + "/" + f.loginID + "/" + f.keyID: []byte("k-123"),
	}
	missing := []string{"op://nope/Login/password", "op://egoengine/Nope/password", "op://egoengine/Login/nope", "op://egoengine/Nope"}
	var refs []Ref
	for s := range want {
		refs = append(refs, ref(t, s))
	}
	for _, s := range missing {
		refs = append(refs, ref(t, s))
	}
	f.svc.ResetCounts()
	res := o.Fetch(context.Background(), refs)
	var msgs []string
	for _, r := range res {
		s := r.Ref.String()
		if w, ok := want[s]; ok {
			if r.Err != nil || !bytes.Equal(r.Value, w) || r.Value == nil {
				t.Errorf("%s: %v, %d bytes (want %d)", s, r.Err, len(r.Value), len(w))
			}
			continue
		}
		if source.ClassOf(r.Err) != source.ClassNotFound || r.Value != nil {
			t.Errorf("%s: %v (%s), want not-found", s, r.Err, source.ClassOf(r.Err))
		}
		msgs = append(msgs, r.Err.Error())
	}
	noSecretsIn(t, f, msgs...)
	if o.Calls() != f.svc.Total() {
		t.Errorf("Calls() = %d, but the service saw %d requests: %v", o.Calls(), f.svc.Total(), f.svc.Requests())
	}
	t.Logf("one Fetch of %d references: %d requests: %v", len(refs), f.svc.Total(), f.svc.Requests())
}

// TestOnePasswordServiceMirror: the home/ listing returns every Document
// under the prefix, whatever the depth of its title, and nothing else.
func TestOnePasswordServiceMirror(t *testing.T) {
	if testing.Short() {
		t.Skip("loads the 1Password SDK's core")
	}
	f := startService(t)
	o := serviceSource(t, f, 0)
	docs, err := o.Documents(context.Background(), "egoengine", "home/")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{"home/.ssh/config": []byte(f.sshConfig), "home/bin.dat": f.binary, f.deepTitle: []byte("deep\n")}
	if len(docs) != len(want) {
		t.Fatalf("Documents: %d, want %d: %+v", len(docs), len(want), docs)
	}
	for _, d := range docs {
		if d.Err != nil || !bytes.Equal(d.Content, want[d.Title]) {
			t.Errorf("%s: %v, %q", d.Title, d.Err, d.Content)
		}
	}
	if _, err := o.Documents(context.Background(), "nope", "home/"); source.ClassOf(err) != source.ClassNotFound {
		t.Errorf("a missing vault: %v", err)
	}
}

// TestOnePasswordServiceFailures: each failure of the service, on each kind
// of route, reaches the caller with the class a user sees, and leaves a
// source that works once the service recovers.
func TestOnePasswordServiceFailures(t *testing.T) {
	if testing.Short() {
		t.Skip("loads the 1Password SDK's core")
	}
	f := startService(t)
	refs := []Ref{ref(t, "op://egoengine/Login/password"), ref(t, "op://egoengine/Files/nul.bin")}
	cases := []struct {
		name    string
		route   string
		fault   opservice.Fault
		timeout time.Duration
		want    Class
	}{
		{"sign-in 401", opservice.RouteAuthStart, opservice.Fault{Status: 401}, 0, ClassInvalidToken},
		{"sign-in 403", opservice.RouteAuthStart, opservice.Fault{Status: 403}, 0, ClassInvalidToken},
		{"vault list 401", opservice.RouteVaults, opservice.Fault{Status: 401}, 0, ClassInvalidToken},
		{"vault list 403", opservice.RouteVaults, opservice.Fault{Status: 403}, 0, ClassInvalidToken},
		{"sign-in 429", opservice.RouteAuthStart, opservice.Fault{Status: 429, RetryAfter: "60"}, 0, ClassRateLimited},
		{"batch 429", opservice.RouteBatch, opservice.Fault{Status: 429, RetryAfter: "60"}, 0, ClassRateLimited},
		{"vault list 500", opservice.RouteVaults, opservice.Fault{Status: 500}, 0, ClassUnreachable},
		{"keysets 503", opservice.RouteKeysets, opservice.Fault{Status: 503}, 0, ClassUnreachable},
		{"sign-in reset", opservice.RouteAuth, opservice.Fault{Reset: true}, 0, ClassUnreachable},
		{"overviews reset", opservice.RouteOverviews, opservice.Fault{Reset: true}, 0, ClassUnreachable},
		{"slow batch", opservice.RouteBatch, opservice.Fault{Delay: 5 * time.Second}, 1500 * time.Millisecond, ClassUnreachable},
		{"malformed vault list", opservice.RouteVaults, opservice.Fault{Malformed: true}, 0, ClassOther},
		{"malformed batch", opservice.RouteBatch, opservice.Fault{Malformed: true}, 0, ClassOther},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.svc.Clear()
			f.svc.ResetCounts()
			o := serviceSource(t, f, 0)
			if tc.timeout != 0 {
				// Sign in first, with time to spare (the core's SRP takes
				// a while on a loaded machine); then only the faulty
				// request meets the short deadline.
				if r := o.Fetch(context.Background(), []Ref{ref(t, "op://work/GitHub/token")}); r[0].Err != nil {
					t.Fatal(r[0].Err)
				}
				o.timeout = tc.timeout
			}
			f.svc.Fail(tc.route, tc.fault)
			res := o.Fetch(context.Background(), refs)
			var msgs []string
			for _, r := range res {
				if got := source.ClassOf(r.Err); got != tc.want || r.Value != nil {
					t.Errorf("%s: %v (%s), want %s", r.Ref, r.Err, got, tc.want)
				}
				if r.Err != nil {
					msgs = append(msgs, r.Err.Error())
				}
			}
			if f.svc.Requests()[tc.route] == 0 {
				t.Fatalf("the fault on %s was never met: %v", tc.route, f.svc.Log())
			}
			noSecretsIn(t, f, msgs...)
			t.Logf("%d requests; %s", f.svc.Total(), msgs[0])

			// The service recovers: the next pass (a new helper in
			// production; here a new Client on the same SDK core, which a
			// trap must not have broken) works again.
			f.svc.Clear()
			res = serviceSource(t, f, 0).Fetch(context.Background(), refs)
			for _, r := range res {
				if r.Err != nil {
					t.Fatalf("after recovery: %s: %v", r.Ref, r.Err)
				}
			}
		})
	}
}

// TestOnePasswordServiceCanFailTheSDK proves the service is faithful enough
// to matter: one deviation from the protocol (SRP's multiplier computed the
// way some libraries do, not as RFC 5054 says) makes the real SDK's sign-in
// fail, with the class a user would see for a token 1Password refuses.
func TestOnePasswordServiceCanFailTheSDK(t *testing.T) {
	if testing.Short() {
		t.Skip("loads the 1Password SDK's core")
	}
	f := startService(t)
	refs := []Ref{ref(t, "op://egoengine/Login/password")}
	f.svc.Deviate(opservice.Deviation{LegacyK: true})
	res := serviceSource(t, f, 0).Fetch(context.Background(), refs)
	if source.ClassOf(res[0].Err) != source.ClassInvalidToken {
		t.Fatalf("with the deviation: %v (%s), want invalid-token", res[0].Err, source.ClassOf(res[0].Err))
	}
	if n := f.svc.Requests()[opservice.RouteAuthComplete]; n != 0 {
		t.Fatalf("the sign-in completed %d times despite the deviation", n)
	}
	t.Logf("with the deviation: %v", res[0].Err)
	// The same service without it: the same token signs in.
	f.svc.Deviate(opservice.Deviation{})
	if res := serviceSource(t, f, 0).Fetch(context.Background(), refs); res[0].Err != nil || string(res[0].Value) != "hunter2" {
		t.Fatalf("without the deviation: %v", res[0].Err)
	}
}

// imagePass runs what a pass of the image's configuration asks of the
// source, in the engine's order: the home/ mirror's listing, then the Codex
// secret (a file attached to an item). It returns the HTTP requests spent.
func imagePass(t *testing.T, f *fixture, o *Client) int {
	t.Helper()
	f.svc.ResetCounts()
	before := o.Calls()
	docs, err := o.Documents(context.Background(), "egoengine", "home/")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		if d.Err != nil {
			t.Fatalf("%s: %v", d.Title, d.Err)
		}
	}
	res := o.Fetch(context.Background(), []Ref{ref(t, "op://egoengine/Codex Auth/auth.json")})
	if res[0].Err != nil || string(res[0].Value) != f.codex {
		t.Fatalf("codex: %v", res[0].Err)
	}
	if o.Calls()-before != f.svc.Total() {
		t.Errorf("Calls() rose by %d, the service saw %d", o.Calls()-before, f.svc.Total())
	}
	return f.svc.Total()
}

// TestOnePasswordServiceRequestsPerPass measures the requests of the image's
// configuration with N mirrored Documents.
func TestOnePasswordServiceRequestsPerPass(t *testing.T) {
	if testing.Short() {
		t.Skip("loads the 1Password SDK's core")
	}
	f := startService(t)
	for _, d := range []string{"home/.ssh/config", "home/bin.dat", f.deepTitle} {
		f.svc.DeleteItem("egoengine", d)
	}
	for n := 0; n <= 5; n++ {
		if n > 0 {
			f.svc.PutItem("egoengine", opservice.Item{Title: fmt.Sprintf("home/doc%d", n), Category: opservice.Document,
				Document: &opservice.File{Name: "doc", Content: []byte("content\n")}})
		}
		o := serviceSource(t, f, 0)
		got := imagePass(t, f, o)
		t.Logf("image configuration, %d Documents: %d requests: %v", n, got, f.svc.Requests())
		// Sign-in 4, keysets 1, vault list 1, item list 1, the Codex
		// item's batch 1, its file 2; with Documents, their batch 1 and
		// 2 each.
		want := 10
		if n > 0 {
			want = 11 + 2*n
		}
		if got != want {
			t.Errorf("image configuration with %d Documents: %d requests, want %d", n, got, want)
		}
	}

	// A Client kept across passes (a helper kept alive) signs in once;
	// what a later pass costs:
	o := serviceSource(t, f, 0)
	o.onePass = false
	start := time.Now()
	first := imagePass(t, f, o)
	mid := time.Now()
	second := imagePass(t, f, o)
	t.Logf("kept alive, 5 Documents: first pass %d requests in %s (core already loaded), second %d in %s: %v",
		first, mid.Sub(start).Round(time.Millisecond), second, time.Since(mid).Round(time.Millisecond), f.svc.Requests())
	if second >= first {
		t.Errorf("a kept-alive Client's second pass cost %d requests, the first %d", second, first)
	}
}
