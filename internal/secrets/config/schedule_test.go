package config

import (
	"testing"
	"time"
)

// onePassword and folder are configurations with one secret, the given
// [schedule] refresh and the given per-secret schedule ("" for none).
func onePassword(refresh, perSecret string) string {
	return scheduled("", refresh, perSecret)
}

func folder(refresh, perSecret string) string {
	return scheduled("[source]\nkind = \"dir\"\ndir = \"/srv/vault\"\n", refresh, perSecret)
}

func scheduled(source, refresh, perSecret string) string {
	s := source
	if refresh != "" {
		s += "[schedule]\nrefresh = \"" + refresh + "\"\n"
	}
	s += "[[secret]]\nname = \"codex\"\nref = \"op://egoengine/Codex Auth/auth.json\"\npath = \"~/.codex/auth.json\"\n"
	if perSecret != "" {
		s += "schedule = \"" + perSecret + "\"\n"
	}
	return s
}

// A schedule whose runs come closer than an hour would spend 1Password's
// request budget; each refusal says how often it would run and what to
// write instead.
func TestScheduleFloor(t *testing.T) {
	if MinRefreshInterval != time.Hour {
		t.Fatalf("MinRefreshInterval = %v; the docs say 1 hour", MinRefreshInterval)
	}
	const (
		everyFix = `write "@every 1h" or longer, such as the default "@every 6h"; for an extra pass now, run egoagent refresh`
		cronFix  = `such as "0 * * * *" (hourly) or "0 */6 * * *"; for an extra pass now, run egoagent refresh`
	)
	checkMessages(t, []messageCase{
		{"zero", onePassword("@every 0s", ""), []string{`cfg.toml:2: schedule.refresh: "@every 0s" is zero, which would run a pass every second`, everyFix}},
		{"zero without a unit", onePassword("@every 0", ""), []string{`cfg.toml:2: schedule.refresh: "@every 0" is zero`, everyFix}},
		{"negative", onePassword("@every -5m", ""), []string{`cfg.toml:2: schedule.refresh: "@every -5m" is negative`, everyFix}},
		{"under a second", onePassword("@every 500ms", ""), []string{`"@every 500ms" is shorter than a second`, everyFix}},
		{"a second", onePassword("@every 1s", ""), []string{`cfg.toml:2: schedule.refresh: "@every 1s" would run a pass every second`, everyFix}},
		{"ten minutes", onePassword("@every 10m", ""), []string{`"@every 10m" would run a pass every 10 minutes`, "at least 1 hour apart", everyFix}},
		{"just under an hour", onePassword("@every 59m59s", ""), []string{`"@every 59m59s" would run a pass every 59m59s`}},
		{"with a time zone", onePassword("TZ=UTC @every 5m", ""), []string{`"TZ=UTC @every 5m" would run a pass every 5 minutes`}},
		{"every minute", onePassword("* * * * *", ""), []string{`cfg.toml:2: schedule.refresh: "* * * * *" would run a pass every minute`, cronFix}},
		{"every 15 minutes", onePassword("*/15 * * * *", ""), []string{`"*/15 * * * *" would run a pass every 15 minutes`, cronFix}},
		{"two close runs a day", onePassword("0,30 9 * * *", ""), []string{`"0,30 9 * * *" would run passes as little as 30 minutes apart`, cronFix}},
		{"close within each hour", onePassword("0,59 * * * *", ""), []string{`"0,59 * * * *" would run passes as little as 1 minute apart`}},
		{"per secret", onePassword("", "*/5 * * * *"), []string{`cfg.toml:5: secret "codex": schedule: "*/5 * * * *" would run a pass every 5 minutes`, cronFix}},
		{"per secret, every", onePassword("", "@every 30m"), []string{`cfg.toml:5: secret "codex": schedule: "@every 30m" would run a pass every 30 minutes`, everyFix}},
		{"never: 30 February", onePassword("0 0 30 2 *", ""), []string{`cfg.toml:2: schedule.refresh: "0 0 30 2 *" never runs: February has no 30th`}},
		{"never: 31 April or June", onePassword("0 0 31 4,6 *", ""), []string{`"0 0 31 4,6 *" never runs: April and June have no 31st`}},
		{"never, per secret", onePassword("", "0 0 31 11 *"), []string{`cfg.toml:5: secret "codex": schedule: "0 0 31 11 *" never runs: November has no 31st`}},
		{"a time zone alone", onePassword("TZ=UTC", ""), []string{`cfg.toml:2: schedule.refresh: "TZ=UTC" is not a schedule`}},
		// A folder costs no requests, so only nonsense is refused there.
		{"folder: zero", folder("@every 0s", ""), []string{`cfg.toml:5: schedule.refresh: "@every 0s" is zero`, `such as "@every 1m"`}},
		{"folder: negative", folder("@every -1s", ""), []string{`"@every -1s" is negative`}},
		{"folder: never", folder("0 0 30 2 *", ""), []string{"never runs: February has no 30th"}},
	})
}

func TestSchedulesAnHourOrMoreApartAreAccepted(t *testing.T) {
	for _, spec := range []string{
		"@every 6h", "@every 1h", "@every 90m", "@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly",
		"0 */6 * * *", "0 * * * *", "30 9 * * 1-5", "0 9,17 * * *", "0 0,23 * * *", "0 0 29 2 *", "0 0 31 * *", "CRON_TZ=Europe/Berlin 0 6 * * *",
	} {
		if _, err := Parse("cfg.toml", []byte(onePassword(spec, spec)), Env{Home: "/home/u"}); err != nil {
			t.Errorf("%q: %v", spec, err)
		}
	}
	// The demo and the end-to-end tests read a folder and run passes
	// seconds apart.
	for _, spec := range []string{"@every 1s", "@every 2s", "@every 1m", "* * * * *"} {
		if _, err := Parse("cfg.toml", []byte(folder(spec, spec)), Env{Home: "/home/u"}); err != nil {
			t.Errorf("folder, %q: %v", spec, err)
		}
	}
}
