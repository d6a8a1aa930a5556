package compose

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// caddyBinary finds the real Caddy that scripts/test-compose.sh builds from
// the Go module proxy at the version of the pinned image.
func caddyBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CADDY_BIN"); p != "" {
		return p
	}
	p, err := exec.LookPath("caddy")
	if err != nil {
		t.Fatal("no Caddy to check the Caddyfile with: run scripts/test-compose.sh (it builds one), or set CADDY_BIN")
	}
	return p
}

// adaptCaddyfile adapts and validates the Caddyfile with the real Caddy, at
// the release the compose file runs, with the environment compose gives the
// container for these .env values. It returns Caddy's JSON, or its error.
func adaptCaddyfile(t *testing.T, env map[string]string) ([]byte, error) {
	t.Helper()
	p := mustLoad(t, env)
	caddySvc := service(t, p, "caddy")
	bin := caddyBinary(t)

	tag := strings.TrimPrefix(caddySvc.Image, "caddy:")
	info, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatalf("go version -m %s: %v", bin, err)
	}
	if !strings.Contains(string(info), "\tmod\tgithub.com/caddyserver/caddy/v2\tv"+tag+"\t") {
		t.Fatalf("%s is not Caddy v%s, the release compose.yaml runs:\n%s", bin, tag, strings.SplitN(string(info), "\tdep", 2)[0])
	}

	var caddyfile string
	for _, v := range caddySvc.Volumes {
		if v.Target == "/etc/caddy" {
			caddyfile = filepath.Join(v.Source, "Caddyfile")
		}
	}
	home := t.TempDir()
	cmd := exec.Command(bin, "adapt", "--config", caddyfile, "--adapter", "caddyfile", "--validate")
	cmd.Env = []string{"HOME=" + home, "XDG_DATA_HOME=" + home, "XDG_CONFIG_HOME=" + home}
	for k, v := range caddySvc.Environment {
		if v != nil {
			cmd.Env = append(cmd.Env, k+"="+*v)
		}
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("caddy adapt --validate %s: %v\n%s", caddyfile, err, stderr.String())
	}
	return out, nil
}

// caddyConfig is the part of Caddy's JSON config the tests look at.
type caddyConfig struct {
	Apps struct {
		HTTP struct {
			Servers map[string]struct {
				Listen []string `json:"listen"`
				Routes []struct {
					Match []struct{ Host []string } `json:"match"`
				} `json:"routes"`
			} `json:"servers"`
		} `json:"http"`
		TLS *struct {
			Automation struct {
				Policies []struct {
					Subjects            []string         `json:"subjects"`
					Issuers             []map[string]any `json:"issuers"`
					DisableOCSPStapling bool             `json:"disable_ocsp_stapling"`
				} `json:"policies"`
			} `json:"automation"`
			DisableOCSPStapling bool `json:"disable_ocsp_stapling"`
		} `json:"tls"`
		PKI *struct {
			CertificateAuthorities map[string]struct {
				InstallTrust *bool `json:"install_trust"`
			} `json:"certificate_authorities"`
		} `json:"pki"`
	} `json:"apps"`
}

func mustAdapt(t *testing.T, env map[string]string) (caddyConfig, string) {
	t.Helper()
	out, err := adaptCaddyfile(t, env)
	if err != nil {
		t.Fatal(err)
	}
	var cfg caddyConfig
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("adapted config: %v\n%s", err, out)
	}
	return cfg, string(out)
}

// With either CADDY_TLS, Caddy serves exactly the access URL, on 443 (with its
// own redirect from 80), and proxies it to Coder.
func TestCaddyfileProxiesAccessURLToCoder(t *testing.T) {
	f := newFixture(t)
	u, _ := url.Parse(f.accessURL)
	// Coder listens on CODER_HTTP_ADDRESS inside the compose network, under its service name.
	coderAddr := *service(t, mustLoad(t, f.env()), "coder").Environment["CODER_HTTP_ADDRESS"]
	upstream := `"dial":"coder:` + coderAddr[strings.LastIndex(coderAddr, ":")+1:] + `"`
	for _, tls := range []string{"", "acme", "internal"} {
		t.Run("CADDY_TLS="+tls, func(t *testing.T) {
			env := f.env()
			env["CADDY_TLS"] = tls
			cfg, out := mustAdapt(t, env)
			if n := len(cfg.Apps.HTTP.Servers); n != 1 {
				t.Fatalf("want one HTTP server, got %d:\n%s", n, out)
			}
			for _, srv := range cfg.Apps.HTTP.Servers {
				if !slices.Equal(srv.Listen, []string{":443"}) {
					t.Errorf("Caddy listens on %v, want :443 (HTTPS, with Caddy's own redirect from :80)", srv.Listen)
				}
				if len(srv.Routes) != 1 || len(srv.Routes[0].Match) != 1 || !slices.Equal(srv.Routes[0].Match[0].Host, []string{u.Hostname()}) {
					t.Errorf("Caddy does not serve exactly the access URL's host %s:\n%s", u.Hostname(), out)
				}
			}
			if !strings.Contains(strings.ReplaceAll(out, " ", ""), upstream) {
				t.Errorf("Caddy does not proxy to %s:\n%s", upstream, out)
			}
		})
	}
}

// CADDY_TLS=acme (and the default) leaves certificates to Caddy's defaults:
// Let's Encrypt over ACME, as before the setting existed. No tls app in the
// config means exactly that; an internal issuer would mean a private CA.
func TestCaddyfileACMEIsCaddysDefault(t *testing.T) {
	f := newFixture(t)
	for _, tls := range []string{"", "acme"} {
		env := f.env()
		env["CADDY_TLS"] = tls
		cfg, out := mustAdapt(t, env)
		if cfg.Apps.TLS != nil || cfg.Apps.PKI != nil || strings.Contains(out, "internal") {
			t.Errorf("CADDY_TLS=%q: Caddy's certificate settings are changed from its ACME defaults:\n%s", tls, out)
		}
	}
}

// CADDY_ACME_CA names another ACME directory: the site's certificate comes
// from it alone, its HTTPS checked against CADDY_ACME_CA_ROOT's roots only
// (the image's system bundle when unset). Also for a name Caddy deems
// internal (.internal, .home.arpa, private addresses), which Caddy would
// otherwise give its own CA whatever the global ACME options say: the names
// a private ACME CA serves.
func TestCaddyfileACMEFromAnotherDirectory(t *testing.T) {
	f := newFixture(t)
	const dir = "https://acme.example.test:14000/dir"
	root := filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(root, []byte(testRootPEM(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct{ accessURL, root, want string }{
		"a public name, a root of its own":   {f.accessURL, root, root},
		"a public name, the system roots":    {f.accessURL, "", "/etc/ssl/certs/ca-certificates.crt"},
		"an internal name (.internal)":       {"https://egoengine.internal", root, root},
		"an internal name (.home.arpa)":      {"https://egoengine.home.arpa", root, root},
		"a private address as the host name": {"https://10.1.2.3", root, root},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := os.Stat(c.want); err != nil {
				t.Skipf("Caddy's check reads %s, which this machine lacks", c.want)
			}
			env := f.env()
			env["CODER_ACCESS_URL"] = c.accessURL
			env["CADDY_ACME_CA"] = dir
			env["CADDY_ACME_CA_ROOT"] = c.root
			cfg, out := mustAdapt(t, env)
			u, _ := url.Parse(c.accessURL)
			if cfg.Apps.TLS == nil || len(cfg.Apps.TLS.Automation.Policies) != 1 {
				t.Fatalf("want one issuance policy, for the site:\n%s", out)
			}
			p := cfg.Apps.TLS.Automation.Policies[0]
			if !slices.Equal(p.Subjects, []string{u.Hostname()}) || len(p.Issuers) != 1 {
				t.Fatalf("policy for %v with issuers %v, want %s from the one ACME directory", p.Subjects, p.Issuers, u.Hostname())
			}
			iss := p.Issuers[0]
			roots, _ := iss["trusted_roots_pem_files"].([]any)
			if iss["module"] != "acme" || iss["ca"] != dir || len(roots) != 1 || roots[0] != c.want {
				t.Errorf("issuer %v, want acme from %s trusting only %s", iss, dir, c.want)
			}
		})
	}
	// Without it, nothing of the sort is in the config.
	cfg, out := mustAdapt(t, f.env())
	if cfg.Apps.TLS != nil || strings.Contains(out, "trusted_roots") {
		t.Errorf("with no CADDY_ACME_CA the config names a CA:\n%s", out)
	}
}

// CADDY_TLS=internal: every certificate from Caddy's local CA, and nothing
// that would contact the outside: no ACME issuer anywhere, no policy left
// without issuers (Caddy fills those with its ACME defaults), no OCSP
// stapling, and no attempt to install the root into the container's trust
// store.
func TestCaddyfileInternalNeverUsesACME(t *testing.T) {
	f := newFixture(t)
	u, _ := url.Parse(f.accessURL)
	env := f.env()
	env["CADDY_TLS"] = "internal"
	cfg, out := mustAdapt(t, env)
	if strings.Contains(strings.ToLower(out), "acme") {
		t.Errorf("the config names ACME:\n%s", out)
	}
	tls := cfg.Apps.TLS
	if tls == nil || len(tls.Automation.Policies) == 0 {
		t.Fatalf("no certificate automation policy, so Caddy would use its ACME defaults:\n%s", out)
	}
	covered := false
	for _, pol := range tls.Automation.Policies {
		if len(pol.Issuers) == 0 {
			t.Errorf("policy for %v has no issuers, so Caddy would use its ACME defaults:\n%s", pol.Subjects, out)
		}
		for _, iss := range pol.Issuers {
			if iss["module"] != "internal" {
				t.Errorf("policy for %v has the issuer %v, want only internal", pol.Subjects, iss)
			}
		}
		if !pol.DisableOCSPStapling {
			t.Errorf("policy for %v staples OCSP", pol.Subjects)
		}
		if len(pol.Subjects) == 0 || slices.Contains(pol.Subjects, u.Hostname()) {
			covered = true
		}
	}
	if !covered {
		t.Errorf("no policy covers %s:\n%s", u.Hostname(), out)
	}
	if !tls.DisableOCSPStapling {
		t.Errorf("the tls app staples OCSP:\n%s", out)
	}
	if cfg.Apps.PKI == nil || cfg.Apps.PKI.CertificateAuthorities["local"].InstallTrust == nil || *cfg.Apps.PKI.CertificateAuthorities["local"].InstallTrust {
		t.Errorf("the local CA would install its root into the container's trust store:\n%s", out)
	}
}

// Any other CADDY_TLS names no snippet, and Caddy refuses to start rather than
// fall back to something (compose.sh refuses it earlier, with a clearer word).
func TestCaddyfileRefusesUnknownTLS(t *testing.T) {
	env := newFixture(t).env()
	env["CADDY_TLS"] = "letsencrypt"
	out, err := adaptCaddyfile(t, env)
	if err == nil {
		t.Fatalf("CADDY_TLS=letsencrypt was accepted:\n%s", out)
	}
	if !strings.Contains(err.Error(), "File to import not found: tls-letsencrypt") {
		t.Errorf("CADDY_TLS=letsencrypt: %v", err)
	}
}

// Why compose.sh keeps CODER_ACCESS_URL at port 443 under the tls profile:
// Caddy listens on the site address's own port, where nothing is published.
func TestCaddyfileListensOnAccessURLPort(t *testing.T) {
	env := newFixture(t).env()
	env["CODER_ACCESS_URL"] = "https://egoengine.example.test:8443"
	cfg, out := mustAdapt(t, env)
	for _, srv := range cfg.Apps.HTTP.Servers {
		if !slices.Equal(srv.Listen, []string{":8443"}) {
			t.Errorf("with the port 8443 in CODER_ACCESS_URL Caddy listens on %v, not :8443; compose.sh's refusal of other ports may be out of date:\n%s", srv.Listen, out)
		}
	}
}

// testRootPEM is a self-signed CA certificate, for a root file Caddy loads.
func testRootPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "egoengine test ACME CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
