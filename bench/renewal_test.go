package bench

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/veraticus/egoengine/internal/health/check/checktest"
	"github.com/veraticus/egoengine/internal/health/status"
	"github.com/veraticus/egoengine/internal/secrets/codexsim"
	"github.com/veraticus/egoengine/internal/secrets/config"
	"github.com/veraticus/egoengine/internal/secrets/daemon"
	"github.com/veraticus/egoengine/internal/secrets/engine"
	"github.com/veraticus/egoengine/internal/secrets/renew"
	"github.com/veraticus/egoengine/internal/secrets/source/onepassword/opservice"
)

// renewalConfig is the image's Codex secret with write-back, and the Codex
// check without a CLI (its absence is a skip, and the file's own rules
// decide), so that only egoagent's work is measured.
const renewalConfig = `[source]
kind = "1password"

[schedule]
refresh = "@every 6h"
jitter = "0s"

[check]
codex_command = "/nonexistent/codex"

[[secret]]
name = "codex"
ref = "op://egoengine/Codex Auth/auth.json"
path = "~/.codex/auth.json"
check = "codex"
policy = "consumer-rewrites"
write_back = true
`

// BenchmarkRenewalBudget reports what near-renewal checks and write-back
// cost in 1Password requests, against the default schedule's cost:
//   - near-passes-day: the passes the daemon's planner adds in a day that
//     holds one renewal, for tokens that live 10 days (the planner is run
//     on a simulated clock);
//   - check-requests: the requests of one such pass (egoagent sync codex
//     against opservice, counted by the service);
//   - upload-requests: the requests of a pass that finds the local file
//     newer and uploads it;
//   - near-requests-day and x-schedule: the first two multiplied, and that
//     over the default schedule's requests a day (4 passes of the image's
//     configuration, also counted here).
func BenchmarkRenewalBudget(b *testing.B) {
	bs := binaries(b)
	helper, err := buildOpHelper()
	if err != nil {
		b.Fatal(err)
	}
	near := nearPassesPerDay(b)

	var check, upload, full int
	for i := 0; i < b.N; i++ {
		svc, err := opservice.Start("")
		if err != nil {
			b.Fatal(err)
		}
		now := time.Now().Truncate(time.Second)
		old := checktest.ChatGPT{LastRefresh: now.Add(-2 * time.Hour), Expires: now.Add(10 * 24 * time.Hour), RefreshToken: "rt-old"}.JSON()
		svc.AddVault(opservice.Vault{Name: "egoengine", Items: []opservice.Item{{Title: "Codex Auth", Category: opservice.SecureNote,
			Sections: []opservice.Section{{Files: []opservice.File{{Name: "auth.json", Content: old}}}}}}})
		dir := b.TempDir()
		cert := filepath.Join(dir, "service.pem")
		os.WriteFile(cert, svc.CertPEM(), 0o600)
		home := filepath.Join(dir, "home")
		os.MkdirAll(home, 0o700)
		cfg := filepath.Join(dir, "config.toml")
		os.WriteFile(cfg, []byte(renewalConfig), 0o600)
		env := []string{"HOME=" + home, "EGOAGENT_CONFIG=" + cfg, "EGOAGENT_OP_HELPER=" + helper,
			"EGOAGENT_OPTEST_ADDR=" + svc.Addr(), "EGOAGENT_OPTEST_CERT=" + cert, "OP_SERVICE_ACCOUNT_TOKEN=" + svc.Token()}

		run(b, env, bs["egoagent"], "sync") // installs 1Password's copy
		svc.ResetCounts()
		run(b, env, bs["egoagent"], "sync", "codex") // a look near renewal: nothing new
		check = svc.Total()

		// Codex renewed here: the next pass uploads.
		renewed := checktest.ChatGPT{LastRefresh: now.Add(-time.Minute), Expires: now.Add(10 * 24 * time.Hour), RefreshToken: "rt-new"}.JSON()
		os.WriteFile(filepath.Join(home, ".codex/auth.json"), renewed, 0o600)
		svc.ResetCounts()
		run(b, env, bs["egoagent"], "sync", "codex")
		upload = svc.Total()
		it, _ := svc.Item("egoengine", "Codex Auth")
		if string(it.Sections[0].Files[0].Content) != string(renewed) {
			b.Fatal("the renewed file did not reach 1Password")
		}
		svc.ResetCounts()
		run(b, env, bs["egoagent"], "sync")
		full = svc.Total()
		svc.Close()
	}
	b.ReportMetric(float64(near), "near-passes-day")
	b.ReportMetric(float64(check), "check-requests")
	b.ReportMetric(float64(upload), "upload-requests")
	b.ReportMetric(float64(near*check), "near-requests-day")
	b.ReportMetric(float64(4*full), "schedule-requests-day")
	b.ReportMetric(float64(near*check)/float64(4*full), "x-schedule")
}

// nearPassesPerDay runs the daemon's planner over a simulated day in which
// the installed copy comes due for renewal at 06:00 and nothing changes
// after, and counts the near-renewal passes it asks for.
func nearPassesPerDay(b *testing.B) int {
	home := b.TempDir()
	cfg, err := config.Parse("bench.toml", []byte(renewalConfig), config.Env{Home: home})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	p := daemon.NewPlanner(cfg, start, rand.New(rand.NewPCG(1, 2)))
	p.Observe(&engine.Report{Outcomes: []engine.Outcome{{Name: "codex", State: status.Fresh,
		RefreshAt: start.Add(6 * time.Hour), TokenLife: 10 * 24 * time.Hour}}}, start)
	n := 0
	for now := p.Next(); !now.After(start.Add(24 * time.Hour)); now = p.Next() {
		for {
			pass, ok := p.Due(now)
			if !ok {
				break
			}
			if pass.Trigger == status.TriggerNearRenewal {
				n++
			}
		}
	}
	if n == 0 {
		b.Fatal(fmt.Errorf("the planner asked for no near-renewal pass"))
	}
	return n
}

// BenchmarkRenewerBudget reports what one renewal by egoagent (renew = true)
// costs, in 1Password requests and token-endpoint calls, for two
// workspaces sharing the login (the local service and codexsim's endpoint):
//   - renewer-requests: the pass that takes the lease, renews, installs and
//     uploads (refresh --renew);
//   - held-requests: another workspace's look while the lease is held (it
//     reads the lease and leaves the renewal to the holder);
//   - install-requests: that workspace's next look, which installs the new
//     login;
//   - endpoint-calls: calls to the token endpoint, for both workspaces.
func BenchmarkRenewerBudget(b *testing.B) {
	bs := binaries(b)
	helper, err := buildOpHelper()
	if err != nil {
		b.Fatal(err)
	}
	var renewer, held, install, calls int
	for i := 0; i < b.N; i++ {
		iss := codexsim.NewIssuer()
		iss.Lifetime = 10 * 24 * time.Hour
		svc, err := opservice.Start("")
		if err != nil {
			b.Fatal(err)
		}
		svc.AddVault(opservice.Vault{Name: "egoengine", Items: []opservice.Item{{Title: "Codex Auth", Category: opservice.SecureNote,
			Sections: []opservice.Section{{Files: []opservice.File{{Name: "auth.json", Content: iss.Seed(10 * 24 * time.Hour)}}}}}}})
		dir := b.TempDir()
		cert := filepath.Join(dir, "service.pem")
		os.WriteFile(cert, svc.CertPEM(), 0o600)
		cfg := filepath.Join(dir, "config.toml")
		os.WriteFile(cfg, []byte(renewalConfig+"renew = true\n"), 0o600)
		envFor := func(name string) []string {
			home := filepath.Join(dir, name)
			os.MkdirAll(home, 0o700)
			return []string{"HOME=" + home, "EGOAGENT_CONFIG=" + cfg, "EGOAGENT_OP_HELPER=" + helper,
				"EGOAGENT_OPTEST_ADDR=" + svc.Addr(), "EGOAGENT_OPTEST_CERT=" + cert, "OP_SERVICE_ACCOUNT_TOKEN=" + svc.Token(),
				renew.TokenURLEnv + "=" + iss.TokenURL()}
		}
		a, o := envFor("a"), envFor("b")
		run(b, a, bs["egoagent"], "sync")
		run(b, o, bs["egoagent"], "sync")

		// The other workspace looks while a holds a live claim.
		claimed := make(chan struct{})
		svc.Before(opservice.RoutePatchItems, func() { close(claimed) })
		done := make(chan struct{})
		svc.ResetCounts()
		go func() {
			defer close(done)
			run(b, a, bs["egoagent"], "refresh", "--renew", "codex")
		}()
		<-claimed
		time.Sleep(time.Second) // the claim's write lands
		before := svc.Total()
		run(b, o, bs["egoagent"], "refresh", "--renew", "codex")
		held = svc.Total() - before
		<-done
		renewer = svc.Total() - held
		svc.ResetCounts()
		run(b, o, bs["egoagent"], "refresh", "codex")
		install = svc.Total()
		calls = len(iss.Refreshes())
		if it, _ := svc.Item("egoengine", "Codex Auth"); calls != 1 || string(it.Sections[0].Files[0].Content) == "" {
			b.Fatalf("%d endpoint calls", calls)
		}
		svc.Close()
		iss.Close()
	}
	b.ReportMetric(float64(renewer), "renewer-requests")
	b.ReportMetric(float64(held), "held-requests")
	b.ReportMetric(float64(install), "install-requests")
	b.ReportMetric(float64(calls), "endpoint-calls")
}
