package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Pebble, Let's Encrypt's ACME test server (github.com/letsencrypt/pebble,
// built from the Go module proxy by scripts/e2e.sh), as the compose stack's
// ACME directory: a real ACME server that validates a real challenge
// against the stack's published ports, and issues from a root it makes at
// start, which nothing trusts until the test fetches it.

// pebble is one running Pebble.
type pebble struct {
	dir     string // the ACME directory URL, on the bridge's address
	tlsRoot []byte // PEM: the root of the directory's own HTTPS certificate
	root    []byte // PEM: the root Pebble issues from (its management API's /roots/0)
	log     string // its output
}

// issued counts the certificates Pebble issued so far.
func (p *pebble) issued(t *testing.T) int {
	b, err := os.ReadFile(p.log)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "Issued certificate serial")
}

// startPebble runs Pebble on host (the bridge's address, which the stack's
// containers reach) under wrap, a command prefix whose /etc/hosts maps the
// access URL's name to where Caddy's ports are published: Pebble's
// validation resolves the name through the system resolver, as a real ACME
// server resolves it through DNS, and connects to ports 80 and 443 there.
func (h *harness) startPebble(bin, host string, wrap []string) *pebble {
	t := h.t
	dir := filepath.Join(h.runDir, "pebble")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The directory's HTTPS: a CA of the test's, a certificate for the
	// bridge's address and loopback (the management API).
	tlsRoot, certPEM, keyPEM := serverCert(t, net.ParseIP(host), net.IPv4(127, 0, 0, 1))
	writeFile(t, filepath.Join(dir, "cert.pem"), string(certPEM))
	writeFile(t, filepath.Join(dir, "key.pem"), string(keyPEM))
	acmePort, mgmtPort := freePortOn(t, host), freePort(t)
	config := map[string]any{"pebble": map[string]any{
		"listenAddress":                  net.JoinHostPort(host, strconv.Itoa(acmePort)),
		"managementListenAddress":        net.JoinHostPort("127.0.0.1", strconv.Itoa(mgmtPort)),
		"certificate":                    filepath.Join(dir, "cert.pem"),
		"privateKey":                     filepath.Join(dir, "key.pem"),
		"httpPort":                       80,
		"tlsPort":                        443,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
		"retryAfter":                     map[string]int{"authz": 1, "order": 1},
		"keyAlgorithm":                   "ecdsa",
		"profiles":                       map[string]any{"default": map[string]any{"description": "egoengine e2e", "validityPeriod": 7776000}},
	}}
	b, _ := json.MarshalIndent(config, "", "  ")
	writeFile(t, filepath.Join(dir, "config.json"), string(b))

	p := &pebble{dir: fmt.Sprintf("https://%s/dir", net.JoinHostPort(host, strconv.Itoa(acmePort))), tlsRoot: tlsRoot, log: filepath.Join(h.runDir, "logs", "pebble.log")}
	logf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	argv := append(append([]string{}, wrap...), bin, "-config", filepath.Join(dir, "config.json"))
	cmd := exec.Command(argv[0], argv[1:]...)
	// No sleep before validating, and no nonces refused at random: a
	// client retries those, but the test need not wait for it.
	cmd.Env = h.childEnv("PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting pebble: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	h.ports = append(h.ports, acmePort, mgmtPort)

	// The issuing root, from the management API, over the HTTPS the test's
	// CA vouches for.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(tlsRoot)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	deadline := time.Now().Add(time.Minute)
	for {
		select {
		case <-done:
			t.Fatalf("pebble exited at start; its log:\n%s", readTail(p.log))
		default:
		}
		resp, err := client.Get(fmt.Sprintf("https://127.0.0.1:%d/roots/0", mgmtPort))
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.Contains(string(body), "BEGIN CERTIFICATE") {
				p.root = body
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble's management API gave no root within a minute (%v); its log:\n%s", err, readTail(p.log))
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The directory answers too.
	if resp, err := client.Get(p.dir); err != nil {
		t.Fatalf("pebble's directory %s: %v", p.dir, err)
	} else {
		resp.Body.Close()
	}
	t.Logf("pebble: directory %s, management on 127.0.0.1:%d", p.dir, mgmtPort)
	return p
}

// serverCert makes a CA and a certificate it signs for the given addresses;
// it returns the CA's certificate, the server's certificate and its key, as
// PEM.
func serverCert(t *testing.T, ips ...net.IP) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "egoengine e2e CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "pebble"},
		IPAddresses:  ips,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}
