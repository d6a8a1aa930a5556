package onepassword

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/veraticus/egoengine/internal/secrets/source"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// These tests run the real 1Password SDK (its WebAssembly core included) up
// to the network boundary. No 1Password account is reachable here, so the
// network side is played by listeners on 127.0.0.1 that the test owns.
//
// How traffic is kept on loopback: the SDK's HTTP requests go through the
// extism host function, which uses http.DefaultClient at request time
// (extism go-sdk v1.7.1, host.go, httpRequest). The tests swap that client
// for one whose dialer ignores the requested address and connects only to
// the test's loopback listener, recording what was asked for. Nothing here
// resolves a public name or dials a non-loopback address.

// offlineSignIn is the sign-in address in test tokens. It matches the SDK's
// allowed hosts (*.1password.com), so the core goes to the network with it;
// the swapped dialer sends that connection to loopback instead.
const offlineSignIn = "egoagent-offline-test.1password.com"

// offlineToken builds a service account token that the real core parses
// and then tries to sign in with: "ops_" and unpadded standard base64 of a
// JSON object with the fields the core's ServiceAccountCredentials reads
// (names from the core's serde strings; shapes from a public, revoked
// token). Every value is random, so the whole token is a canary: the
// returned strings must never appear in any message.
func offlineToken(t *testing.T, signIn string) (token string, canaries []string) {
	t.Helper()
	random := func(n int) []byte {
		b := make([]byte, n)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	pick := func(n int, alphabet string) string {
		var sb strings.Builder
		for _, b := range random(n) {
			sb.WriteByte(alphabet[int(b)%len(alphabet)])
		}
		return sb.String()
	}
	const skAlphabet = "23456789ABCDEFGHJKLMNPQRSTVWXYZ"
	secretKey := "A3-" + pick(6, skAlphabet) + "-" + pick(6, skAlphabet) + "-" + pick(5, skAlphabet) + "-" +
		pick(5, skAlphabet) + "-" + pick(5, skAlphabet) + "-" + pick(5, skAlphabet)
	srpX := hex.EncodeToString(random(32))
	muk := base64.RawURLEncoding.EncodeToString(random(32))
	seed := hex.EncodeToString(random(32))
	cred := map[string]any{
		"signInAddress": signIn,
		"userAuth": map[string]any{
			"method": "SRPg-4096", "alg": "PBES2g-HS256", "iterations": 650000,
			"salt": base64.RawURLEncoding.EncodeToString(random(16)),
		},
		"email": pick(13, "abcdefghijklmnopqrstuvwxyz234567") + "@1passwordserviceaccounts.com",
		"srpX":  srpX,
		"muk": map[string]any{
			"alg": "A256GCM", "ext": true, "k": muk, "key_ops": []string{"encrypt", "decrypt"}, "kty": "oct", "kid": "mp",
		},
		"secretKey":      secretKey,
		"throttleSecret": map[string]any{"seed": seed, "uuid": pick(26, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")},
		"deviceUuid":     pick(26, "abcdefghijklmnopqrstuvwxyz234567"),
	}
	raw, err := json.Marshal(cred)
	if err != nil {
		t.Fatal(err)
	}
	body := base64.RawStdEncoding.EncodeToString(raw)
	return "ops_" + body, []string{"ops_" + body, body, secretKey, srpX, muk, seed}
}

// loopbackNet replaces http.DefaultClient for the test. dial opens the
// connection the SDK asked for, always to a loopback address.
type loopbackNet struct {
	mu     sync.Mutex
	dialed []string // addresses the SDK asked for
}

func (n *loopbackNet) asked() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.dialed...)
}

func useLoopbackNet(t *testing.T, tlsConf *tls.Config, dial func(ctx context.Context, addr string) (net.Conn, error)) *loopbackNet {
	t.Helper()
	n := &loopbackNet{}
	tr := &http.Transport{
		Proxy: nil, // no proxy from the environment either
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			n.mu.Lock()
			n.dialed = append(n.dialed, addr)
			n.mu.Unlock()
			return dial(ctx, addr)
		},
		TLSClientConfig:     tlsConf,
		TLSHandshakeTimeout: 5 * time.Second,
	}
	old := http.DefaultClient
	http.DefaultClient = &http.Client{Transport: tr}
	t.Cleanup(func() {
		http.DefaultClient = old
		tr.CloseIdleConnections()
	})
	return n
}

// dialLoopback connects to a loopback address, refusing anything else, so a
// mistake in a test cannot send traffic off the machine.
func dialLoopback(ctx context.Context, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("test dialer: refusing non-loopback address %s", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// listen starts a loopback TCP listener that hands each connection to serve.
func listen(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); serve(c) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// quietTLSServer is an httptest TLS server on loopback that does not log the
// handshake failures some cases cause on purpose.
func quietTLSServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T, network string) string {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := c.LocalAddr().String()
		c.Close()
		return addr
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// nxdomainServer answers every DNS query over UDP on loopback with NXDOMAIN.
// It returns its address and how many queries it has answered.
func nxdomainServer(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	var answered atomic.Int64
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 12 {
				continue
			}
			// The query, turned into its own answer: same ID, question and
			// EDNS record, flagged as a response with NXDOMAIN.
			resp := append([]byte(nil), buf[:n]...)
			resp[2] = 0x80 | (buf[2] & 0x79) // response, same opcode and RD
			resp[3] = 0x80 | 3               // recursion available, NXDOMAIN
			if _, err := pc.WriteTo(resp, from); err == nil {
				answered.Add(1)
			}
		}
	}()
	return pc.LocalAddr().String(), &answered
}

var testRefs = []Ref{
	{Vault: "egoengine", Item: "Codex Auth", Field: "auth.json"},
	{Vault: "egoengine", Item: "Login", Section: "api", Field: "key"},
	{Vault: "egoengine", Item: "home/.ssh/config"},
}

// fetchAll runs Fetch and Documents and checks that every error has class
// want and mentions no canary. It returns one message for the test log.
func fetchAll(t *testing.T, o *Client, want Class, canaries []string) string {
	t.Helper()
	ctx := context.Background()
	res := o.Fetch(ctx, testRefs)
	if len(res) != len(testRefs) {
		t.Fatalf("Fetch returned %d results for %d references", len(res), len(testRefs))
	}
	var msgs []string
	for i, r := range res {
		if r.Ref != testRefs[i] {
			t.Errorf("result %d is for %v, want %v", i, r.Ref, testRefs[i])
		}
		if r.Err == nil || r.Value != nil {
			t.Fatalf("result %d: value %q, err %v; want an error of class %s", i, r.Value, r.Err, want)
		}
		if got := source.ClassOf(r.Err); got != want {
			t.Errorf("result %d: class %s, want %s: %v", i, got, want, r.Err)
		}
		if !strings.HasPrefix(r.Err.Error(), testRefs[i].String()+": ") {
			t.Errorf("result %d: message does not start with its reference: %v", i, r.Err)
		}
		msgs = append(msgs, errorTexts(r.Err)...)
	}
	docs, err := o.Documents(ctx, "egoengine", "home/")
	if docs != nil || err == nil {
		t.Fatalf("Documents = %v, %v; want an error", docs, err)
	}
	if got := source.ClassOf(err); got != want {
		t.Errorf("Documents: class %s, want %s: %v", got, want, err)
	}
	msgs = append(msgs, errorTexts(err)...)
	for _, m := range msgs {
		for _, c := range canaries {
			if c != "" && strings.Contains(m, c) {
				t.Fatalf("an error message contains a secret from the token: %q", m)
			}
		}
	}
	return msgs[0]
}

// errorTexts returns the text of err and of everything it wraps.
func errorTexts(err error) []string {
	var out []string
	for e := err; e != nil; e = errors.Unwrap(e) {
		out = append(out, e.Error(), fmt.Sprintf("%+v", e))
	}
	return out
}

func newTestOnePassword(t *testing.T, token string, timeout time.Duration) *Client {
	t.Helper()
	o, err := New(context.Background(), Options{
		Version: "test",
		Getenv: func(k string) string {
			if k == TokenEnv {
				return token
			}
			return ""
		},
		Timeout: timeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestOnePasswordMissingToken(t *testing.T) {
	for _, tok := range []string{"", "  \n"} {
		o := newTestOnePassword(t, tok, 0)
		msg := fetchAll(t, o, ClassMissingToken, nil)
		if !strings.Contains(msg, "OP_SERVICE_ACCOUNT_TOKEN is not set") || !strings.Contains(msg, "coder secret create op-token --env OP_SERVICE_ACCOUNT_TOKEN") || !strings.Contains(msg, "op_service_account_token") {
			t.Errorf("message does not say what is missing and where to set it: %s", msg)
		}
		if o.Calls() != 0 {
			t.Errorf("Calls() = %d without a token; nothing should have been sent", o.Calls())
		}
		if o.client != nil {
			t.Error("an SDK client was created without a token")
		}
	}
}

// childEnv marks the process that runs the real SDK's cases.
const childEnv = "EGOAGENT_TEST_1PASSWORD_CHILD"

// TestOnePasswordRealSDKOffline drives the real SDK through every way the
// sign-in can fail here. It runs in a child process: the SDK's core is one
// per process and is worn down by each network failure inside a request
// (see Client.ready), so a run must start from a fresh core to be
// repeatable (go test -count=N) and to end with the core broken on purpose.
// The child pays for loading the core once (seconds).
func TestOnePasswordRealSDKOffline(t *testing.T) {
	if testing.Short() {
		t.Skip("loads the 1Password SDK's WebAssembly core (seconds); run without -short")
	}
	if os.Getenv(childEnv) == "" {
		args := []string{"-test.run=^TestOnePasswordRealSDKOffline$", "-test.count=1", "-test.timeout=5m"}
		if testing.Verbose() {
			args = append(args, "-test.v")
		}
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), childEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil || testing.Verbose() {
			t.Logf("child process output:\n%s", out)
		}
		if err != nil {
			t.Fatalf("real SDK cases failed in the child process: %v", err)
		}
		if !strings.Contains(string(out), "PASS") {
			t.Fatal("the child process ran no cases")
		}
		return
	}

	t.Run("malformed tokens", func(t *testing.T) {
		// No listener: a malformed token must fail before any traffic.
		n := useLoopbackNet(t, nil, func(context.Context, string) (net.Conn, error) {
			return nil, errors.New("test dialer: a malformed token must not reach the network")
		})
		canary := "CANARY" + hex.EncodeToString([]byte(t.Name()))
		partial, _ := json.Marshal(map[string]any{"signInAddress": offlineSignIn, "secretKey": canary})
		// Well-formed but for a server the SDK will not talk to.
		offHost, offHostCanaries := offlineToken(t, "127.0.0.1:9")
		for name, tok := range map[string]string{
			"no ops_ prefix":         canary,
			"not base64":             "ops_" + canary + "!!",
			"base64 of no JSON":      "ops_" + base64.RawStdEncoding.EncodeToString([]byte(canary)),
			"JSON missing fields":    "ops_" + base64.RawStdEncoding.EncodeToString(partial),
			"not a 1Password server": offHost,
		} {
			t.Run(name, func(t *testing.T) {
				o := newTestOnePassword(t, tok, 10*time.Second)
				canaries := append([]string{tok, canary, strings.TrimPrefix(tok, "ops_")}, offHostCanaries...)
				msg := fetchAll(t, o, ClassInvalidToken, canaries)
				t.Logf("message: %s", msg)
				if !strings.Contains(msg, "op_service_account_token") {
					t.Errorf("message does not say where to fix the token: %s", msg)
				}
			})
		}
		if a := n.asked(); len(a) != 0 {
			t.Errorf("malformed tokens reached for the network: %v", a)
		}
	})

	// A well-formed token that the core accepts and signs in with; each case
	// answers that sign-in differently.
	token, canaries := offlineToken(t, offlineSignIn)

	type netCase struct {
		name    string
		timeout time.Duration
		want    Class
		says    string // a word the message must contain
		setup   func(t *testing.T) (*tls.Config, func(ctx context.Context, addr string) (net.Conn, error))
	}
	network := []netCase{
		{
			name: "connection refused", want: ClassUnreachable, says: "cannot reach 1Password",
			setup: func(t *testing.T) (*tls.Config, func(context.Context, string) (net.Conn, error)) {
				addr := closedPort(t, "tcp")
				return nil, func(ctx context.Context, _ string) (net.Conn, error) { return dialLoopback(ctx, addr) }
			},
		},
		{
			name: "connection closed at once", want: ClassUnreachable, says: "cannot reach 1Password",
			setup: func(t *testing.T) (*tls.Config, func(context.Context, string) (net.Conn, error)) {
				addr := listen(t, func(c net.Conn) { c.Close() })
				return nil, func(ctx context.Context, _ string) (net.Conn, error) { return dialLoopback(ctx, addr) }
			},
		},
		{
			name: "no answer", timeout: 700 * time.Millisecond, want: ClassUnreachable, says: "did not answer within",
			setup: func(t *testing.T) (*tls.Config, func(context.Context, string) (net.Conn, error)) {
				// Reads whatever comes and never answers, until cleanup
				// closes the connection.
				addr := listen(t, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
				return nil, func(ctx context.Context, _ string) (net.Conn, error) { return dialLoopback(ctx, addr) }
			},
		},
		{
			name: "name does not resolve", want: ClassUnreachable, says: "no such host",
			setup: func(t *testing.T) (*tls.Config, func(context.Context, string) (net.Conn, error)) {
				dns, answered := nxdomainServer(t)
				t.Cleanup(func() {
					// The failure came from this loopback server, not from
					// the resolver that resolv.conf names (and that Go's
					// error text mentions).
					if answered.Load() == 0 {
						t.Error("the loopback DNS server answered no query")
					}
				})
				r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, "udp", dns) // every lookup goes to the loopback server
				}}
				// A plain dialer that resolves through the loopback server
				// and may connect to loopback addresses only.
				d := &net.Dialer{Resolver: r, Control: func(_, address string, _ syscall.RawConn) error {
					host, _, _ := net.SplitHostPort(address)
					if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
						return fmt.Errorf("test dialer: refusing non-loopback address %s", address)
					}
					return nil
				}}
				return nil, func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
			},
		},
		{
			name: "untrusted TLS certificate", want: ClassUnreachable, says: "certificate",
			setup: func(t *testing.T) (*tls.Config, func(context.Context, string) (net.Conn, error)) {
				srv := quietTLSServer(t, http.NotFoundHandler())
				addr := srv.Listener.Addr().String()
				return nil, func(ctx context.Context, _ string) (net.Conn, error) { return dialLoopback(ctx, addr) }
			},
		},
	}

	// trusted serves h over TLS on loopback with a certificate the swapped
	// client trusts (httptest's names example.com), so that the core reads
	// the answers.
	trusted := func(t *testing.T, h http.HandlerFunc) (*tls.Config, func(context.Context, string) (net.Conn, error)) {
		srv := quietTLSServer(t, h)
		pool := x509.NewCertPool()
		pool.AddCert(srv.Certificate())
		addr := srv.Listener.Addr().String()
		return &tls.Config{RootCAs: pool, ServerName: "example.com"},
			func(ctx context.Context, _ string) (net.Conn, error) { return dialLoopback(ctx, addr) }
	}

	// The sign-in's first request is POST /api/v3/auth/start. A server that
	// answers it with an HTTP status shows how the real core reports each.
	var answered []netCase
	for _, st := range []struct {
		status int
		want   Class
		says   string
	}{
		{401, ClassInvalidToken, "rejected"},
		{403, ClassInvalidToken, "rejected"},
		{404, ClassInvalidToken, "rejected"},
		{429, ClassRateLimited, "rate limit"},
		{500, ClassUnreachable, "service failed"},
		{503, ClassUnreachable, "service failed"},
		{200, ClassInvalidToken, "rejected"}, // a body that is no sign-in answer
	} {
		answered = append(answered, netCase{
			name: fmt.Sprintf("sign-in answered %d", st.status), want: st.want, says: st.says,
			setup: func(t *testing.T) (*tls.Config, func(context.Context, string) (net.Conn, error)) {
				return trusted(t, func(w http.ResponseWriter, r *http.Request) {
					if r.Method == http.MethodHead && r.URL.Path == "/" {
						return // the probe; any answer will do
					}
					if r.URL.Path != "/api/v3/auth/start" {
						t.Errorf("unexpected request %s %s", r.Method, r.URL.Path)
					}
					w.WriteHeader(st.status)
					_, _ = w.Write([]byte(`{"message":"stand-in"}`))
				})
			},
		})
	}
	// The probe gets through; the sign-in right after it does not.
	answered = append(answered, netCase{
		name: "connection lost after the probe", want: ClassUnreachable, says: "cannot reach 1Password",
		setup: func(t *testing.T) (*tls.Config, func(context.Context, string) (net.Conn, error)) {
			return trusted(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodHead {
					return
				}
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					conn.Close()
				}
			})
		},
	})

	// run checks one case. sdkCalls is how many requests the source should
	// have counted: 0 when the probe stopped the pass, 2 when Fetch and
	// Documents each tried a sign-in.
	run := func(t *testing.T, tc netCase, probe bool, sdkCalls int) {
		timeout := tc.timeout
		if timeout == 0 {
			timeout = 10 * time.Second
		}
		conf, dial := tc.setup(t)
		n := useLoopbackNet(t, conf, dial)
		o := newTestOnePassword(t, token, timeout)
		o.noProbe = !probe
		start := time.Now()
		msg := fetchAll(t, o, tc.want, canaries)
		t.Logf("%s in %s: %s", tc.want, time.Since(start).Round(time.Millisecond), msg)
		if !strings.Contains(msg, tc.says) {
			t.Errorf("message does not say %q: %s", tc.says, msg)
		}
		// The token's sign-in address is what was asked for: the token was
		// accepted, and this is the network boundary.
		asked := n.asked()
		if len(asked) == 0 || asked[0] != offlineSignIn+":443" {
			t.Errorf("dials asked for %v, want %s:443", asked, offlineSignIn)
		}
		if o.Calls() != sdkCalls {
			t.Errorf("Calls() = %d, want %d", o.Calls(), sdkCalls)
		}
		if o.client != nil {
			t.Error("a failed sign-in left a client behind")
		}
	}

	// With the probe, as in production: a dead network never reaches the
	// SDK.
	for _, tc := range network {
		t.Run("probe/"+tc.name, func(t *testing.T) { run(t, tc, true, 0) })
	}
	for _, tc := range answered {
		t.Run("probe/"+tc.name, func(t *testing.T) { run(t, tc, true, 2) })
	}
	// Without the probe: the real SDK meets each network failure itself and
	// its error texts map to the same classes. Each of these wears the core.
	for _, tc := range network {
		t.Run("sdk/"+tc.name, func(t *testing.T) { run(t, tc, false, 2) })
	}

	// Last, because it breaks this process's core on purpose: repeated
	// network failures inside requests end in "wasm error: ...", which the
	// source must report as ErrSDKCoreBroken and then stop calling the SDK.
	t.Run("core worn out", func(t *testing.T) {
		addr := closedPort(t, "tcp")
		useLoopbackNet(t, nil, func(ctx context.Context, _ string) (net.Conn, error) { return dialLoopback(ctx, addr) })
		o := newTestOnePassword(t, token, 10*time.Second)
		o.noProbe = true
		ref := testRefs[:1]
		var err error
		for i := 0; i < 60 && !errors.Is(err, ErrSDKCoreBroken); i++ {
			err = o.Fetch(context.Background(), ref)[0].Err
		}
		if !errors.Is(err, ErrSDKCoreBroken) {
			t.Fatalf("60 network failures did not wear out the core (last: %v); has the SDK changed? Then revisit Client.ready", err)
		}
		if !strings.Contains(err.Error(), "restart egoagent") {
			t.Errorf("message does not say to restart: %v", err)
		}
		t.Logf("after %d sign-ins: %v", o.Calls(), err)
		calls := o.Calls()
		again := o.Fetch(context.Background(), ref)[0].Err
		docs, derr := o.Documents(context.Background(), "egoengine", "home/")
		if !errors.Is(again, ErrSDKCoreBroken) || !errors.Is(derr, ErrSDKCoreBroken) || docs != nil || o.Calls() != calls {
			t.Errorf("after the core broke: %v / %v, Calls %d -> %d; want the same error and no more requests", again, derr, calls, o.Calls())
		}
	})
}
