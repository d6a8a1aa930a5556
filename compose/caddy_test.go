package compose

import (
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
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

// The Caddyfile is adapted and validated by the real Caddy, at the release
// the compose file runs, with the environment compose gives the container.
func TestCaddyfileProxiesAccessURLToCoder(t *testing.T) {
	f := newFixture(t)
	p := mustLoad(t, f.env())
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
		if v.Target == "/etc/caddy/Caddyfile" {
			caddyfile = v.Source
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
		t.Fatalf("caddy adapt --validate %s: %v\n%s", caddyfile, err, stderr.String())
	}

	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Listen []string `json:"listen"`
					Routes []struct {
						Match []struct{ Host []string } `json:"match"`
					} `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("adapted config: %v\n%s", err, out)
	}
	if n := len(cfg.Apps.HTTP.Servers); n != 1 {
		t.Fatalf("want one HTTP server, got %d:\n%s", n, out)
	}
	u, _ := url.Parse(f.accessURL)
	for _, srv := range cfg.Apps.HTTP.Servers {
		if !slices.Equal(srv.Listen, []string{":443"}) {
			t.Errorf("Caddy listens on %v, want :443 (HTTPS, with Caddy's own redirect from :80)", srv.Listen)
		}
		if len(srv.Routes) != 1 || len(srv.Routes[0].Match) != 1 || !slices.Equal(srv.Routes[0].Match[0].Host, []string{u.Hostname()}) {
			t.Errorf("Caddy does not serve exactly the access URL's host %s:\n%s", u.Hostname(), out)
		}
	}
	// Coder listens on CODER_HTTP_ADDRESS inside the compose network, under its service name.
	coderAddr := *service(t, p, "coder").Environment["CODER_HTTP_ADDRESS"]
	upstream := `"dial":"coder:` + coderAddr[strings.LastIndex(coderAddr, ":")+1:] + `"`
	if !strings.Contains(strings.ReplaceAll(string(out), " ", ""), upstream) {
		t.Errorf("Caddy does not proxy to %s:\n%s", upstream, out)
	}
}
