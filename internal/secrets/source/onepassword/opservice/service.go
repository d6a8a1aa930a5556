// Package opservice is a stand-in for the 1Password service, for tests only:
// the unmodified 1Password SDK (its WebAssembly core included) signs in to
// it with a token the test mints and reads vaults, items and files that the
// test sets up as plain Go values, and writes through it. It follows the
// protocol of the SDK version in go.mod (see SDKVersion) as established in
// the project's notes; nothing here is documented by 1Password, and real
// error answers, paging and trashed items are not modelled.
//
// Writes are checked as a careful service would: a write whose item version
// is not the stored one is refused (two writers cannot both win), and so is
// any write to a vault made read-only (SetReadOnly). How the refusal is
// answered (RefuseWritesWith) follows what the SDK's core understands; what
// the real service answers is not known.
//
// It counts every HTTP request by route and can be told to fail any route
// (an HTTP status, a reset connection, a slow or malformed answer). It
// serves HTTPS on a loopback port with a certificate of its own; tests send
// the SDK's connections there (see DialContext and ClientTLS).
//
// No production code imports this package.
package opservice

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// SDKVersion is the version of github.com/1password/onepassword-sdk-go whose
// protocol this service follows. A test compares it with go.mod.
const SDKVersion = "v0.4.1"

// Routes, as counted by Requests and named in Fail. Each is the method and
// path pattern of one kind of request.
const (
	RouteProbe        = "HEAD /"
	RouteAuthStart    = "POST /api/v3/auth/start"
	RouteAuth         = "POST /api/v2/auth"
	RouteConfirmKey   = "POST /api/v2/auth/confirm-key"
	RouteAuthComplete = "POST /api/v2/auth/complete"
	RouteKeysets      = "GET /api/v2/account/keysets"
	RouteVaults       = "GET /api/v1/vaults"
	RouteOverviews    = "GET /api/v1/vault/{vault}/items/overviews"
	RouteBatch        = "POST /api/v3/vault/{vault}/items/batch"
	RouteItem         = "GET /api/v1/vault/{vault}/item/{item}"
	RouteFile         = "GET /api/v3/file/{file}"
	RouteVault        = "GET /api/v3/vault/{vault}"
	RoutePatchItems   = "PATCH /api/v3/vault/{vault}/{version}/items"
	RouteUpload       = "POST /api/v3/file"
	RouteSignedFile   = "GET /api/v2/file/{vault}/{item}/{file}"
	RouteUnknown      = "unknown"
)

var allRoutes = []string{RouteProbe, RouteAuthStart, RouteAuth, RouteConfirmKey, RouteAuthComplete, RouteKeysets,
	RouteVaults, RouteOverviews, RouteBatch, RouteItem, RouteFile, RouteVault, RoutePatchItems, RouteUpload, RouteSignedFile}

// Fault makes requests on a route fail. Exactly one of Status, Reset and
// Malformed should be set; Delay may come with any of them, or alone (a slow
// but correct answer).
type Fault struct {
	Status     int           // answer this HTTP status with a small JSON error body
	RetryAfter string        // the Retry-After header to send with Status
	Reset      bool          // close the connection without an answer
	Malformed  bool          // answer 200 with a body that is not what the route answers
	Delay      time.Duration // wait this long first (or until the request is abandoned)
	Times      int           // how many requests to fail; 0 means until Clear
}

// Deviation breaks the protocol on purpose, to prove that the SDK notices
// (a test that the service can fail the SDK at all).
type Deviation struct {
	// LegacyK computes SRP's multiplier k as SHA256(N ‖ g) without padding g,
	// the non-standard form of some SRP libraries, instead of RFC 5054's.
	LegacyK bool
}

// Service is a running stand-in. Its methods are safe for concurrent use.
type Service struct {
	// Host is the sign-in host in the tokens it mints; it ends in
	// .1password.com, a domain the SDK talks to.
	Host string

	ln   net.Listener
	srv  *http.Server
	cert []byte // PEM of the serving certificate, which is its own root
	mux  *http.ServeMux

	acct account

	mu        sync.Mutex
	creds     []*credential // every token identity minted; creds[0] is Token's
	deviation Deviation
	vaults    []*vault
	blobs     map[string][]byte // file ID -> ciphertext
	sessions  map[string]*session
	counts    map[string]int
	faults    map[string]*Fault
	hooks     map[string][]func() // run once each, before the next request on the route
	refusal   Refusal
	log       []string // route of every request, in order
	clients   []string // the client each completed sign-in named
	// pick, when set, makes the SRP exchange redraw the server's secret
	// until pick accepts its public value and the two proofs (tests of
	// rare cases).
	pick func(B *big.Int, clientProof, serverProof []byte) bool
}

// account is what the service accounts of the stand-in share: one user, one
// keyset, one MUK. Each token is a credential of its own (NewToken), so that
// rotation can be played: a new token signs in while the old one still
// does, until it is revoked.
type account struct {
	deviceUUID, userUUID string
	salt                 []byte
	muk                  []byte
	keysetID             string
	symKey               []byte
	rsaKey               *rsa.PrivateKey
}

// credential is one token's identity: the email the SDK signs in as and the
// secrets that prove it.
type credential struct {
	email, secretKey string
	srpX             *big.Int
	revoked          bool
	signIns          int // completed sign-ins
}

func newCredential() *credential {
	return &credential{
		email:     newID()[:13] + "@1passwordserviceaccounts.com",
		secretKey: mintSecretKey(),
		srpX:      new(big.Int).SetBytes(randomBytes(32)),
	}
}

type session struct {
	id   string
	cred *credential
	srp  *srpServer
	skid string
	ok   bool // the client proved the key
}

// Start runs a service on a loopback port until Close. host is the sign-in
// host (a name under .1password.com); "" picks one.
func Start(host string) (*Service, error) {
	if host == "" {
		host = "egoagent-" + newID()[:8] + ".1password.com"
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	s := &Service{
		Host: host,
		acct: account{
			deviceUUID: newID(),
			userUUID:   newID(),
			salt:       randomBytes(16),
			muk:        randomBytes(32),
			keysetID:   newID(),
			symKey:     randomBytes(32),
			rsaKey:     rk,
		},
		creds:    []*credential{newCredential()},
		blobs:    map[string][]byte{},
		sessions: map[string]*session{},
		counts:   map[string]int{},
		faults:   map[string]*Fault{},
	}
	certPEM, tlsCert, err := selfSigned(host)
	if err != nil {
		return nil, err
	}
	s.cert = certPEM
	s.mux = http.NewServeMux()
	s.routes()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:   http.HandlerFunc(s.serve),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{tlsCert}},
		ErrorLog:  log.New(io.Discard, "", 0), // failures on purpose are not news
		// HTTP/1.1 only, so that a reset is a reset of the connection
		// (HTTP/2 has no Hijack); the SDK's clients in tests speak 1.1.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	go s.srv.ServeTLS(ln, "", "")
	return s, nil
}

// Close stops the service and drops its connections.
func (s *Service) Close() { s.srv.Close() }

// Addr is the loopback address the service listens on.
func (s *Service) Addr() string { return s.ln.Addr().String() }

// CertPEM is the service's certificate, which a client must trust.
func (s *Service) CertPEM() []byte { return append([]byte(nil), s.cert...) }

// ClientTLS is a TLS configuration that trusts the service.
func (s *Service) ClientTLS() *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.cert)
	return &tls.Config{RootCAs: pool}
}

// DialContext connects to the service whatever address is asked for: the
// dialer to give the HTTP client the SDK uses.
func (s *Service) DialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", s.Addr())
}

// Transport is an HTTP transport that reaches only this service.
func (s *Service) Transport() *http.Transport {
	return &http.Transport{Proxy: nil, DialContext: s.DialContext, TLSClientConfig: s.ClientTLS()}
}

// Token mints a service account token for the service's first credential,
// in the form the SDK parses: "ops_" and unpadded base64 of the
// credentials. Each call mints a new string (the throttle seed is random)
// for the same credential.
func (s *Service) Token() string {
	s.mu.Lock()
	c := s.creds[0]
	s.mu.Unlock()
	return s.token(c.secretKey, c.email, c.srpX)
}

// NewToken mints a token of a new credential, which signs in as well as
// Token's does: the token an owner creates when rotating.
func (s *Service) NewToken() string {
	c := newCredential()
	s.mu.Lock()
	s.creds = append(s.creds, c)
	s.mu.Unlock()
	return s.token(c.secretKey, c.email, c.srpX)
}

// Revoke makes the service forget token's credential: its next sign-in is
// refused at the start, as for an account that does not exist. Sessions
// already signed in keep working, as they do until they expire. It panics
// on a token the service did not mint, so that a typo cannot make a test
// pass.
func (s *Service) Revoke(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.credOf(token).revoked = true
}

// SignIns counts the completed sign-ins of token's credential.
func (s *Service) SignIns(token string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.credOf(token).signIns
}

// credOf finds the credential a token of this service was minted for.
func (s *Service) credOf(token string) *credential {
	var cred struct {
		Email string `json:"email"`
	}
	raw, err := b64std.DecodeString(strings.TrimPrefix(token, "ops_"))
	if err == nil {
		err = json.Unmarshal(raw, &cred)
	}
	for _, c := range s.creds {
		if err == nil && c.email == cred.Email {
			return c
		}
	}
	panic("opservice: not a token this service minted")
}

// WrongToken mints a token of the same shape whose credentials the service
// does not know: its sign-in must fail as a user's revoked token would.
func (s *Service) WrongToken() string {
	s.mu.Lock()
	c := s.creds[0]
	s.mu.Unlock()
	return s.token(c.secretKey, c.email, new(big.Int).SetBytes(randomBytes(32)))
}

// TokenSecrets are the strings of Token that must never be shown.
func (s *Service) TokenSecrets() []string { return s.TokenSecretsOf(s.Token()) }

// TokenSecretsOf are the strings of a token this service minted that must
// never be shown: the token, its body, and the secrets inside it.
func (s *Service) TokenSecretsOf(token string) []string {
	s.mu.Lock()
	c := s.credOf(token)
	s.mu.Unlock()
	return []string{token, strings.TrimPrefix(token, "ops_"), c.secretKey, hex.EncodeToString(c.srpX.Bytes()), b64.EncodeToString(s.acct.muk)}
}

func (s *Service) token(secretKey, email string, x *big.Int) string {
	cred := map[string]any{
		"signInAddress": s.Host,
		"userAuth": map[string]any{
			"method": "SRPg-4096", "alg": "PBES2g-HS256", "iterations": 650000, "salt": b64.EncodeToString(s.acct.salt),
		},
		"email":          email,
		"srpX":           hex.EncodeToString(x.Bytes()),
		"muk":            symJWK{Alg: "A256GCM", Ext: true, K: b64.EncodeToString(s.acct.muk), KeyOps: []string{"encrypt", "decrypt"}, Kty: "oct", Kid: "mp"},
		"secretKey":      secretKey,
		"throttleSecret": map[string]any{"seed": hex.EncodeToString(randomBytes(32)), "uuid": newSessionID()},
		"deviceUuid":     s.acct.deviceUUID,
	}
	return "ops_" + b64std.EncodeToString(mustJSON(cred))
}

func mintSecretKey() string {
	const alphabet = "23456789ABCDEFGHJKLMNPQRSTVWXYZ"
	pick := func(n int) string {
		var sb strings.Builder
		for _, b := range randomBytes(n) {
			sb.WriteByte(alphabet[int(b)%len(alphabet)])
		}
		return sb.String()
	}
	return "A3-" + pick(6) + "-" + pick(6) + "-" + pick(5) + "-" + pick(5) + "-" + pick(5) + "-" + pick(5)
}

// Deviate sets the protocol deviations of later sign-ins.
func (s *Service) Deviate(d Deviation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deviation = d
}

// Fail makes requests on route fail as f says. It panics on a route the
// service does not have, so that a typo cannot make a test pass.
func (s *Service) Fail(route string, f Fault) {
	known := false
	for _, r := range allRoutes {
		known = known || r == route
	}
	if !known {
		panic("opservice: no route " + route)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[route] = &f
}

// Before runs f once, before the service answers the next request on
// route: a test's way to change what the service holds between two
// requests of one SDK call (another writer's edit between the SDK's read
// of an item and its write). f may use the Service's methods.
func (s *Service) Before(route string, f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hooks == nil {
		s.hooks = map[string][]func(){}
	}
	s.hooks[route] = append(s.hooks[route], f)
}

// Clear removes every fault.
func (s *Service) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = map[string]*Fault{}
}

// Requests returns how many requests each route has had since the last
// ResetCounts.
func (s *Service) Requests() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.counts))
	for k, v := range s.counts {
		out[k] = v
	}
	return out
}

// Total is the number of requests since the last ResetCounts, the
// reachability probe (not a 1Password API request) left out.
func (s *Service) Total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, v := range s.counts {
		if k != RouteProbe {
			n += v
		}
	}
	return n
}

// Log returns the route of every request since the last ResetCounts, in
// order.
func (s *Service) Log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.log...)
}

// ResetCounts sets every count to zero.
func (s *Service) ResetCounts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts = map[string]int{}
	s.log = nil
}

// serve counts the request, applies a fault if one is set, and answers.
func (s *Service) serve(w http.ResponseWriter, r *http.Request) {
	_, pattern := s.mux.Handler(r)
	if pattern == "" || pattern == "/" {
		pattern = RouteUnknown
		if r.Method == http.MethodHead && r.URL.Path == "/" {
			pattern = RouteProbe
		}
	}
	s.mu.Lock()
	s.counts[pattern]++
	s.log = append(s.log, pattern)
	var f *Fault
	if ff := s.faults[pattern]; ff != nil {
		c := *ff
		f = &c
		if ff.Times > 0 {
			ff.Times--
			if ff.Times == 0 {
				delete(s.faults, pattern)
			}
		}
	}
	hooks := s.hooks[pattern]
	delete(s.hooks, pattern)
	s.mu.Unlock()

	for _, h := range hooks {
		h()
	}
	if f != nil {
		if f.Delay > 0 {
			select {
			case <-time.After(f.Delay):
			case <-r.Context().Done():
				return
			}
		}
		switch {
		case f.Reset:
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					if tc, ok := c.(*tls.Conn); ok {
						if nc, ok := tc.NetConn().(*net.TCPConn); ok {
							nc.SetLinger(0) // a reset, not a clean close
						}
					}
					c.Close()
				}
			}
			return
		case f.Status != 0:
			if f.RetryAfter != "" {
				w.Header().Set("Retry-After", f.RetryAfter)
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(f.Status)
			fmt.Fprintf(w, `{"errorCode":%d,"errorMessage":%q}`, f.Status, http.StatusText(f.Status))
			return
		case f.Malformed:
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"stand-in":"this is not the answer this route gives"`)
			return
		}
	}
	switch pattern {
	case RouteProbe:
		w.WriteHeader(http.StatusOK)
	case RouteUnknown:
		http.Error(w, `{"errorCode":501,"errorMessage":"not implemented by the stand-in"}`, http.StatusNotImplemented)
	default:
		s.mux.ServeHTTP(w, r)
	}
}

// selfSigned makes a certificate for host and *.1password.com that is its
// own root.
func selfSigned(host string) ([]byte, tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "opservice stand-in"},
		DNSNames:              []string{host, "*.1password.com"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return certPEM, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(mustJSON(v))
}

func errorAnswer(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(mustJSON(map[string]any{"errorCode": status, "errorMessage": msg}))
}
