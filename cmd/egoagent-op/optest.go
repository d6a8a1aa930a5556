//go:build egoagent_optest

// This file exists only in test builds of egoagent-op (go build -tags
// egoagent_optest); the shipped binary does not contain it. It is the one
// difference between the two: every connection the SDK opens goes to the
// loopback or private address in EGOAGENT_OPTEST_ADDR (private: the address
// of the Docker end-to-end test's own bridge on this host, docs/e2e.md), over TLS that trusts only the
// certificate in the file EGOAGENT_OPTEST_CERT. Tests use it to run the real
// helper against a local stand-in for 1Password
// (internal/secrets/source/onepassword/opservice).

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
)

func init() {
	addr, certFile := os.Getenv("EGOAGENT_OPTEST_ADDR"), os.Getenv("EGOAGENT_OPTEST_CERT")
	if addr == "" || certFile == "" {
		fmt.Fprintln(os.Stderr, "egoagent-op (test build): EGOAGENT_OPTEST_ADDR and EGOAGENT_OPTEST_CERT must name the test's service")
		os.Exit(2)
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !(ip.IsLoopback() || ip.IsPrivate()) {
		fmt.Fprintln(os.Stderr, "egoagent-op (test build): EGOAGENT_OPTEST_ADDR must be a loopback or private address")
		os.Exit(2)
	}
	pem, err := os.ReadFile(certFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "egoagent-op (test build):", err)
		os.Exit(2)
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
