package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veraticus/egoengine/internal/secrets/source"
	"github.com/veraticus/egoengine/internal/secrets/source/onepassword/opservice"
)

// serviceEnv, in the test binary run as the helper, names the loopback
// address of an opservice and the file of its certificate, separated by a
// space: the helper's SDK then talks to that service alone, as the
// egoagent_optest build does (optest.go), without building another binary.
const serviceEnv = "EGOAGENT_OP_TEST_SERVICE"

func init() {
	addr, certFile, ok := strings.Cut(os.Getenv(serviceEnv), " ")
	if os.Getenv(asHelperEnv) != "1" || !ok {
		return
	}
	pem, err := os.ReadFile(certFile)
	if err != nil {
		panic(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	http.DefaultClient = &http.Client{Transport: &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		},
		TLSClientConfig: &tls.Config{RootCAs: pool},
	}}
}

// TestReplaceThroughTheHelper: egoagent's write-back reaches 1Password
// through the real helper and the real SDK: a write, a *Conflict with what
// 1Password holds now, and a read-only token's class, all across the pipe.
func TestReplaceThroughTheHelper(t *testing.T) {
	if testing.Short() {
		t.Skip("loads the 1Password SDK's core")
	}
	svc, err := opservice.Start("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	login := func(password string) opservice.Item {
		return opservice.Item{Title: "Login", Fields: []opservice.Field{{Title: "password", Value: password, Concealed: true}}}
	}
	svc.AddVault(opservice.Vault{Name: "egoengine", Items: []opservice.Item{login("v1")}})
	cert := filepath.Join(t.TempDir(), "service.pem")
	if err := os.WriteFile(cert, svc.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(serviceEnv, svc.Addr()+" "+cert)
	p := helper(t, svc.Token())
	ctx := context.Background()
	r := source.Ref{Vault: "egoengine", Item: "Login", Field: "password"}
	holds := func() string {
		it, _ := svc.Item("egoengine", "Login")
		return it.Sections[0].Fields[0].Value
	}

	if res := p.Fetch(ctx, []source.Ref{r}); string(res[0].Value) != "v1" {
		t.Fatalf("fetch: %v", res[0].Err)
	}
	if err := p.Replace(ctx, r, []byte("v1"), []byte("v2")); err != nil || holds() != "v2" {
		t.Fatalf("Replace: %v; 1Password holds %q", err, holds())
	}

	svc.PutItem("egoengine", login("theirs"))
	err = p.Replace(ctx, r, []byte("v2"), []byte("v3"))
	var c *source.Conflict
	if !errors.As(err, &c) || !bytes.Equal(c.Current, []byte("theirs")) || holds() != "theirs" {
		t.Fatalf("after another writer: %v; 1Password holds %q", err, holds())
	}

	svc.SetReadOnly("egoengine", true)
	err = p.Replace(ctx, r, []byte("theirs"), []byte("v3"))
	if source.ClassOf(err) != source.ClassReadOnly || !strings.Contains(err.Error(), `vault "egoengine"`) || holds() != "theirs" {
		t.Fatalf("read-only: %v (%s); 1Password holds %q", err, source.ClassOf(err), holds())
	}
	if p.Calls() != svc.Total() {
		t.Errorf("the helper counted %d requests, the service saw %d", p.Calls(), svc.Total())
	}
}
