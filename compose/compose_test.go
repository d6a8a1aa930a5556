package compose

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/types"
)

// The values a person must write into .env before the stack starts. The test
// fills them in on top of .env.example, as a person would.
var required = []string{"CODER_ACCESS_URL", "POSTGRES_PASSWORD", "DOCKER_GROUP_ID"}

type fixture struct {
	accessURL  string
	dbPassword string
	groupID    string
	opToken    string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	// The socket's real group where there is one, so that scripts/compose.sh
	// has no reason to warn on a machine running Docker.
	groupID := "994"
	if st, err := os.Stat("/var/run/docker.sock"); err == nil {
		groupID = strconv.FormatUint(uint64(st.Sys().(*syscall.Stat_t).Gid), 10)
	}
	return fixture{
		accessURL:  "https://egoengine.example.test",
		dbPassword: hex.EncodeToString(b),
		groupID:    groupID,
		opToken:    "not-a-real-token-" + hex.EncodeToString(b[:4]),
	}
}

func (f fixture) env() map[string]string {
	return map[string]string{
		"CODER_ACCESS_URL":                   f.accessURL,
		"POSTGRES_PASSWORD":                  f.dbPassword,
		"DOCKER_GROUP_ID":                    f.groupID,
		"EGOENGINE_OP_SERVICE_ACCOUNT_TOKEN": f.opToken,
	}
}

// load reads compose.yaml the way `docker compose --env-file .env.example`
// does, with overrides standing for what a person writes into .env (an empty
// value blanks a key). The process environment is left out on purpose, so the
// result does not depend on the machine running the test.
func load(t *testing.T, envFile string, overrides map[string]string) (*types.Project, error) {
	t.Helper()
	var kv []string
	for k, v := range overrides {
		kv = append(kv, k+"="+v)
	}
	opts := []cli.ProjectOptionsFn{cli.WithWorkingDirectory(".")}
	if envFile != "" {
		opts = append(opts, cli.WithEnvFiles(envFile), cli.WithDotEnv)
	}
	// Profiles last: COMPOSE_PROFILES comes from the env file, as in compose.
	opts = append(opts, cli.WithEnv(kv), cli.WithDefaultProfiles())
	o, err := cli.NewProjectOptions([]string{"compose.yaml"}, opts...)
	if err != nil {
		t.Fatalf("project options: %v", err)
	}
	return o.LoadProject(context.Background())
}

func mustLoad(t *testing.T, overrides map[string]string) *types.Project {
	t.Helper()
	p, err := load(t, ".env.example", overrides)
	if err != nil {
		t.Fatalf("compose.yaml with .env.example and the required values filled in does not load: %v", err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatalf("service %q: %v", name, err)
	}
	return s
}

func TestEnvExampleKeepsSecretsAndRequiredValuesEmpty(t *testing.T) {
	env, err := dotenv.GetEnvFromFile(nil, []string{".env.example"})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range required {
		v, ok := env[k]
		if !ok {
			t.Errorf(".env.example does not list the required key %s", k)
		} else if v != "" {
			t.Errorf(".env.example sets %s=%q: required values stay empty so that a copied file cannot start with a placeholder", k, v)
		}
	}
	secretKey := regexp.MustCompile(`(PASSWORD|SECRET|TOKEN)$`)
	for k, v := range env {
		if secretKey.MatchString(k) && v != "" {
			t.Errorf(".env.example holds a value for the secret %s", k)
		}
	}
	if env["COMPOSE_PROFILES"] != "tls" {
		t.Errorf(".env.example: COMPOSE_PROFILES=%q, want tls (Caddy on by default)", env["COMPOSE_PROFILES"])
	}
}

// A missing required value must stop compose with a message that names the
// variable and says what to put there; this is what `docker compose up` prints.
func TestMissingRequiredValueStopsWithMessage(t *testing.T) {
	f := newFixture(t)
	hints := map[string]string{
		"CODER_ACCESS_URL":  "set CODER_ACCESS_URL in compose/.env to https://egoengine.<your domain>",
		"POSTGRES_PASSWORD": "set POSTGRES_PASSWORD in compose/.env (for example the output of `openssl rand -hex 32`)",
		"DOCKER_GROUP_ID":   "set DOCKER_GROUP_ID in compose/.env to the group owning the socket (`stat -c %g /var/run/docker.sock`)",
	}
	for _, missing := range required {
		for _, how := range []string{"empty", "absent"} {
			t.Run(missing+"/"+how, func(t *testing.T) {
				env := f.env()
				envFile := ".env.example"
				if how == "empty" {
					env[missing] = ""
				} else {
					// No env file at all, so the key is not defined anywhere.
					delete(env, missing)
					envFile = ""
				}
				_, err := load(t, envFile, env)
				if err == nil {
					t.Fatalf("compose.yaml loaded with %s %s; it must refuse", missing, how)
				}
				want := "required variable " + missing + " is missing a value: " + hints[missing]
				if !strings.Contains(err.Error(), want) {
					t.Fatalf("error for %s %s:\n  got  %v\n  want it to contain %q", missing, how, err, want)
				}
				t.Logf("a person sees: %v", err)
			})
		}
	}
	t.Run("env.example as copied", func(t *testing.T) {
		_, err := load(t, ".env.example", nil)
		if err == nil || !strings.Contains(err.Error(), "is missing a value: set ") {
			t.Fatalf("an unedited copy of .env.example must not load; got %v", err)
		}
	})
}

func TestServicesAndProfiles(t *testing.T) {
	f := newFixture(t)
	p := mustLoad(t, f.env())
	if got, want := p.ServiceNames(), []string{"caddy", "coder", "database"}; !slices.Equal(sorted(got), want) {
		t.Errorf("with COMPOSE_PROFILES=tls: services %v, want %v", got, want)
	}
	if p.Name != "egoengine" {
		t.Errorf("project name %q, want egoengine (volume names in the backup guide depend on it)", p.Name)
	}

	env := f.env()
	env["COMPOSE_PROFILES"] = ""
	plain := mustLoad(t, env)
	if got, want := plain.ServiceNames(), []string{"coder", "database"}; !slices.Equal(sorted(got), want) {
		t.Errorf("behind an existing proxy (no profile): services %v, want %v", got, want)
	}
	if _, ok := plain.DisabledServices["caddy"]; !ok {
		t.Errorf("caddy must be switched off without the tls profile")
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestImagesArePinned(t *testing.T) {
	p := mustLoad(t, newFixture(t).env())
	want := map[string]*regexp.Regexp{
		"coder":    regexp.MustCompile(`^ghcr\.io/coder/coder:v\d+\.\d+\.\d+$`),
		"database": regexp.MustCompile(`^postgres:\d+\.\d+$`),
		"caddy":    regexp.MustCompile(`^caddy:\d+\.\d+\.\d+$`),
	}
	for name, re := range want {
		img := service(t, p, name).Image
		if !re.MatchString(img) {
			t.Errorf("%s: image %q is not pinned to a release (want %s)", name, img, re)
		}
	}
	// The pins live in compose.yaml itself, not in .env where they could
	// drift to latest unnoticed. Only Coder's tag is settable (CODER_VERSION,
	// which compose.sh holds to a release tag), and its default is a pin.
	raw, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	settable := regexp.MustCompile(`^image: ghcr\.io/coder/coder:\$\{CODER_VERSION:-v\d+\.\d+\.\d+\}$`)
	for _, line := range strings.Split(string(raw), "\n") {
		l := strings.TrimSpace(line)
		if strings.HasPrefix(l, "image:") && (strings.Contains(l, "$") || strings.Contains(l, "latest")) && !settable.MatchString(l) {
			t.Errorf("compose.yaml: %q: images are pinned in the file, not interpolated or latest (CODER_VERSION aside)", l)
		}
	}
}

// CODER_VERSION picks Coder's release; without it, the default pinned in
// compose.yaml runs, the release the docs name.
func TestCoderVersionIsSettable(t *testing.T) {
	f := newFixture(t)
	image := service(t, mustLoad(t, f.env()), "coder").Image
	for _, doc := range []string{"../docs/operations.md", "README.md"} {
		if !strings.Contains(mustRead(t, doc), "`"+image+"`") {
			t.Errorf("%s does not name the default Coder image %s", doc, image)
		}
	}
	for value, want := range map[string]string{"v2.28.0-rc.1": "ghcr.io/coder/coder:v2.28.0-rc.1", "": image} {
		env := f.env()
		env["CODER_VERSION"] = value
		if got := service(t, mustLoad(t, env), "coder").Image; got != want {
			t.Errorf("CODER_VERSION=%q: coder image %q, want %q", value, got, want)
		}
	}
}

// Every variable compose.yaml reads is explained in .env.example, set or as a
// commented-out default.
func TestEnvExampleListsEveryVariable(t *testing.T) {
	example := mustRead(t, ".env.example")
	seen := map[string]bool{}
	for _, m := range regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)`).FindAllStringSubmatch(mustRead(t, "compose.yaml"), -1) {
		name := m[1]
		if seen[name] {
			continue
		}
		seen[name] = true
		if !regexp.MustCompile(`(?m)^#?` + name + `=`).MatchString(example) {
			t.Errorf("compose.yaml reads %s, which .env.example does not list", name)
		}
	}
	for _, name := range []string{"CODER_VERSION", "DOCKER_SOCKET", "CADDY_TLS", "CADDY_HTTP_PUBLISH", "CADDY_HTTPS_PUBLISH"} {
		if !seen[name] {
			t.Errorf("compose.yaml does not read %s", name)
		}
	}
}

func TestHealthchecksAndRestart(t *testing.T) {
	p := mustLoad(t, newFixture(t).env())
	for name, s := range p.Services {
		h := s.HealthCheck
		switch {
		case h == nil || h.Disable || len(h.Test) < 2 || h.Test[0] == "NONE":
			t.Errorf("%s: no healthcheck", name)
		case h.Interval == nil || h.Timeout == nil || h.Retries == nil:
			t.Errorf("%s: healthcheck without interval, timeout and retries", name)
		}
		if s.Restart != types.RestartPolicyUnlessStopped {
			t.Errorf("%s: restart %q, want %q", name, s.Restart, types.RestartPolicyUnlessStopped)
		}
	}
	// Each check must probe the service itself, on the port it serves.
	probes := map[string]string{"coder": "http://127.0.0.1:7080/healthz", "database": "pg_isready", "caddy": "http://127.0.0.1:2019/"}
	for name, want := range probes {
		if got := strings.Join(service(t, p, name).HealthCheck.Test, " "); !strings.Contains(got, want) {
			t.Errorf("%s: healthcheck %q does not probe %s", name, got, want)
		}
	}
	if got := strings.Join(service(t, p, "database").HealthCheck.Test, " "); !strings.Contains(got, "--username coder --dbname coder") {
		t.Errorf("database healthcheck %q does not use the interpolated role and database", got)
	}
}

func TestCoderWaitsForHealthyDatabase(t *testing.T) {
	p := mustLoad(t, newFixture(t).env())
	dep, ok := service(t, p, "coder").DependsOn["database"]
	if !ok {
		t.Fatal("coder does not depend on database")
	}
	if dep.Condition != types.ServiceConditionHealthy {
		t.Errorf("coder waits for database condition %q, want %q", dep.Condition, types.ServiceConditionHealthy)
	}
	if !dep.Required {
		t.Errorf("coder's dependency on database must be required")
	}
}

func TestVolumesAndDockerSocket(t *testing.T) {
	f := newFixture(t)
	p := mustLoad(t, f.env())
	type mount struct{ typ, source, target string }
	mounts := func(name string) []mount {
		var m []mount
		for _, v := range service(t, p, name).Volumes {
			m = append(m, mount{v.Type, v.Source, v.Target})
		}
		return m
	}
	want := map[string][]mount{
		"database": {{types.VolumeTypeVolume, "coder_db", "/var/lib/postgresql/data"}},
		"coder": {
			{types.VolumeTypeBind, "/var/run/docker.sock", "/var/run/docker.sock"},
			{types.VolumeTypeVolume, "coder_home", "/home/coder"},
		},
	}
	for name, w := range want {
		got := mounts(name)
		for _, m := range w {
			if !slices.Contains(got, m) {
				t.Errorf("%s: mount %+v missing; has %+v", name, m, got)
			}
		}
	}
	caddy := mounts("caddy")
	for _, m := range []mount{{types.VolumeTypeVolume, "caddy_data", "/data"}, {types.VolumeTypeVolume, "caddy_config", "/config"}} {
		if !slices.Contains(caddy, m) {
			t.Errorf("caddy: mount %+v missing; has %+v", m, caddy)
		}
	}
	var caddyfile string
	for _, m := range caddy {
		if m.target == "/etc/caddy" {
			caddyfile = filepath.Join(m.source, "Caddyfile")
		}
	}
	if st, err := os.Stat(caddyfile); err != nil || st.IsDir() {
		t.Errorf("caddy mounts %q as its Caddyfile, which is not a file in the repository (%v)", caddyfile, err)
	}
	for _, name := range []string{"coder_db", "coder_home", "caddy_data", "caddy_config"} {
		v, ok := p.Volumes[name]
		if !ok {
			t.Errorf("named volume %s is not declared", name)
			continue
		}
		if bool(v.External) {
			t.Errorf("volume %s is external; compose should create it", name)
		}
		if v.Name != "egoengine_"+name {
			t.Errorf("volume %s is named %q on the host, want egoengine_%s", name, v.Name, name)
		}
	}
	if got := service(t, p, "coder").GroupAdd; !slices.Equal(got, []string{f.groupID}) {
		t.Errorf("coder group_add %v, want [%s] from DOCKER_GROUP_ID", got, f.groupID)
	}

	// DOCKER_SOCKET moves the host side only: inside, the templates' Docker
	// provider finds the socket at its default address.
	env := f.env()
	env["DOCKER_SOCKET"] = "/run/user/1000/docker.sock"
	var sockets []mount
	for _, v := range service(t, mustLoad(t, env), "coder").Volumes {
		if v.Type == types.VolumeTypeBind {
			sockets = append(sockets, mount{v.Type, v.Source, v.Target})
		}
	}
	if want := []mount{{types.VolumeTypeBind, "/run/user/1000/docker.sock", "/var/run/docker.sock"}}; !slices.Equal(sockets, want) {
		t.Errorf("with DOCKER_SOCKET=/run/user/1000/docker.sock: coder binds %+v, want %+v", sockets, want)
	}
}

func TestPorts(t *testing.T) {
	f := newFixture(t)
	p := mustLoad(t, f.env())
	if ports := service(t, p, "database").Ports; len(ports) != 0 {
		t.Errorf("database publishes %v; only Coder on the compose network may reach it", ports)
	}
	coder := service(t, p, "coder").Ports
	if len(coder) != 1 || coder[0].HostIP != "127.0.0.1" || coder[0].Published != "7080" || coder[0].Target != 7080 {
		t.Errorf("coder ports %+v, want 127.0.0.1:7080->7080 by default", coder)
	}
	env := f.env()
	env["CODER_PUBLISH"] = "0.0.0.0:8080"
	coder = service(t, mustLoad(t, env), "coder").Ports
	if len(coder) != 1 || coder[0].HostIP != "0.0.0.0" || coder[0].Published != "8080" {
		t.Errorf("with CODER_PUBLISH=0.0.0.0:8080: coder ports %+v", coder)
	}

	// Caddy: on every address by default; CADDY_HTTP_PUBLISH and
	// CADDY_HTTPS_PUBLISH move the host side, never the container's.
	caddyPorts := func(p *types.Project) []string {
		var got []string
		for _, port := range service(t, p, "caddy").Ports {
			got = append(got, port.HostIP+":"+port.Published+"->"+strconv.Itoa(int(port.Target))+"/"+port.Protocol)
		}
		slices.Sort(got)
		return got
	}
	if got, want := caddyPorts(p), []string{":443->443/tcp", ":443->443/udp", ":80->80/tcp"}; !slices.Equal(got, want) {
		t.Errorf("caddy ports %v, want %v by default", got, want)
	}
	env["CADDY_HTTP_PUBLISH"] = "192.168.1.10:8080"
	env["CADDY_HTTPS_PUBLISH"] = "192.168.1.10:8443"
	want := []string{"192.168.1.10:8080->80/tcp", "192.168.1.10:8443->443/tcp", "192.168.1.10:8443->443/udp"}
	if got := caddyPorts(mustLoad(t, env)); !slices.Equal(got, want) {
		t.Errorf("with CADDY_HTTP_PUBLISH=192.168.1.10:8080 and CADDY_HTTPS_PUBLISH=192.168.1.10:8443: caddy ports %v, want %v", got, want)
	}
	env["CADDY_HTTP_PUBLISH"] = "[::1]:80"
	env["CADDY_HTTPS_PUBLISH"] = "443"
	want = []string{":443->443/tcp", ":443->443/udp", "::1:80->80/tcp"}
	if got := caddyPorts(mustLoad(t, env)); !slices.Equal(got, want) {
		t.Errorf("with CADDY_HTTP_PUBLISH=[::1]:80 and CADDY_HTTPS_PUBLISH=443: caddy ports %v, want %v", got, want)
	}
}

func TestEnvironmentWiring(t *testing.T) {
	f := newFixture(t)
	env := f.env()
	oidc := map[string]string{
		"CODER_OIDC_ISSUER_URL":       "https://idp.example.test/realms/egoengine",
		"CODER_OIDC_CLIENT_ID":        "egoengine-coder",
		"CODER_OIDC_CLIENT_SECRET":    "client-secret-" + f.dbPassword[:8],
		"CODER_OIDC_EMAIL_DOMAIN":     "example.test",
		"CODER_DISABLE_PASSWORD_AUTH": "true",
	}
	for k, v := range oidc {
		env[k] = v
	}
	p := mustLoad(t, env)
	coder := service(t, p, "coder").Environment
	get := func(env types.MappingWithEquals, k string) string {
		t.Helper()
		v, ok := env[k]
		if !ok || v == nil {
			t.Errorf("%s is not set", k)
			return ""
		}
		return *v
	}
	if got := get(coder, "CODER_ACCESS_URL"); got != f.accessURL {
		t.Errorf("coder CODER_ACCESS_URL=%q, want %q", got, f.accessURL)
	}
	if got := get(service(t, p, "caddy").Environment, "CODER_ACCESS_URL"); got != f.accessURL {
		t.Errorf("caddy CODER_ACCESS_URL=%q, want %q (the Caddyfile's site address)", got, f.accessURL)
	}
	if got := get(service(t, p, "caddy").Environment, "CADDY_TLS"); got != "acme" {
		t.Errorf("caddy CADDY_TLS=%q by default, want acme (Let's Encrypt, as before the setting existed)", got)
	}
	internal := f.env()
	internal["CADDY_TLS"] = "internal"
	if got := get(service(t, mustLoad(t, internal), "caddy").Environment, "CADDY_TLS"); got != "internal" {
		t.Errorf("caddy CADDY_TLS=%q, want internal from .env", got)
	}
	if got := get(coder, "TF_VAR_op_service_account_token"); got != f.opToken {
		t.Errorf("TF_VAR_op_service_account_token does not carry EGOENGINE_OP_SERVICE_ACCOUNT_TOKEN from .env")
	}
	for k, v := range oidc {
		if get(coder, k) != v {
			t.Errorf("coder %s does not carry the .env value", k)
		}
	}
	if got := get(coder, "CODER_OIDC_ALLOW_SIGNUPS"); got != "false" {
		t.Errorf("CODER_OIDC_ALLOW_SIGNUPS=%q by default, want false", got)
	}

	db := service(t, p, "database").Environment
	if got := get(db, "POSTGRES_PASSWORD"); got != f.dbPassword {
		t.Errorf("database POSTGRES_PASSWORD does not carry the .env value")
	}
	u, err := url.Parse(get(coder, "CODER_PG_CONNECTION_URL"))
	if err != nil {
		t.Fatalf("CODER_PG_CONNECTION_URL does not parse: %v", err)
	}
	pw, _ := u.User.Password()
	if u.Scheme != "postgresql" || u.Hostname() != "database" || u.User.Username() != get(db, "POSTGRES_USER") ||
		pw != f.dbPassword || strings.TrimPrefix(u.Path, "/") != get(db, "POSTGRES_DB") || u.Query().Get("sslmode") != "disable" {
		t.Errorf("CODER_PG_CONNECTION_URL does not point at the database service with its role, password and database")
	}
}

// The default Coder is the one the end-to-end tests build and run
// (scripts/e2e.sh's CODER_VERSION): the owner's first day is on a tested
// server, and an upgrade of one is an upgrade of both.
func TestDefaultCoderIsTheTestedOne(t *testing.T) {
	image := service(t, mustLoad(t, newFixture(t).env()), "coder").Image
	m := regexp.MustCompile(`(?m)^CODER_VERSION=(v\d+\.\d+\.\d+)$`).FindStringSubmatch(mustRead(t, "../scripts/e2e.sh"))
	if m == nil {
		t.Fatal("scripts/e2e.sh pins no CODER_VERSION=vX.Y.Z")
	}
	if want := "ghcr.io/coder/coder:" + m[1]; image != want {
		t.Errorf("compose.yaml runs %s by default, but the end-to-end tests build and run Coder %s: pin %s", image, m[1], want)
	}
}

// Every CODER_* name given to the server must be one of its documented
// options: a misspelt name is silently ignored by Coder. The docs come from
// the Coder module at the version of the pinned image, or at CODER_VERSION
// from the environment (`CODER_VERSION=v2.N.N make test-compose`, before an
// upgrade through .env).
func TestCoderSettingsAreRealOptions(t *testing.T) {
	coder, version, defaults := coderOptions(t)
	for k := range coder.Environment {
		if _, known := defaults[k]; strings.HasPrefix(k, "CODER_") && !known {
			t.Errorf("coder: %s is not an option of coder server %s", k, version)
		}
	}
}

// coderOptions reads the options of coder server from the Coder module at
// the version of the pinned image (or CODER_VERSION from the environment):
// each option's environment variable and its default ("" for none).
func coderOptions(t *testing.T) (coder types.ServiceConfig, version string, defaults map[string]string) {
	t.Helper()
	p := mustLoad(t, newFixture(t).env())
	coder = service(t, p, "coder")
	version = coder.Image[strings.LastIndex(coder.Image, ":")+1:]
	if v := os.Getenv("CODER_VERSION"); v != "" {
		version = v
	}
	t.Logf("options of coder server %s", version)
	out, err := exec.Command("go", "mod", "download", "-json", "github.com/coder/coder/v2@"+version).Output()
	if err != nil {
		t.Fatalf("download the Coder module %s for its option reference: %v", version, err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download output %q: %v", out, err)
	}
	doc, err := os.ReadFile(filepath.Join(mod.Dir, "docs", "reference", "cli", "server.md"))
	if err != nil {
		t.Fatal(err)
	}
	// One section per option: its table names the variable, and the
	// default when there is one.
	defaults = map[string]string{}
	envRow := regexp.MustCompile(`\$(CODER_[A-Z0-9_]+)`)
	defaultRow := regexp.MustCompile(`(?m)^\|\s*Default\s*\|\s*<code>(.*?)</code>`)
	for _, section := range strings.Split(string(doc), "\n### ") {
		def := ""
		if m := defaultRow.FindStringSubmatch(section); m != nil {
			def = m[1]
		}
		for _, m := range envRow.FindAllStringSubmatch(section, -1) {
			defaults[m[1]] = def
		}
	}
	if len(defaults) < 100 || defaults["CODER_OIDC_SCOPES"] == "" {
		t.Fatalf("found only %d options in %s/docs/reference/cli/server.md, or no default scopes; has its format changed?", len(defaults), mod.Dir)
	}
	return coder, version, defaults
}

// Coder takes an empty variable as an empty value, not as unset, so a
// setting compose.yaml passes from .env as ${NAME:-} replaces Coder's
// default with nothing when .env leaves it blank (an empty
// CODER_OIDC_SCOPES asked providers for no scope, and every OIDC sign-in
// failed). Each such default must be Coder's own.
func TestBlankSettingsKeepCodersDefaults(t *testing.T) {
	_, version, defaults := coderOptions(t)
	raw := mustRead(t, "compose.yaml")
	n := 0
	for _, m := range regexp.MustCompile(`(?m)^\s+(CODER_[A-Z0-9_]+):\s*\$\{([A-Z0-9_]+):-([^}]*)\}\s*$`).FindAllStringSubmatch(raw, -1) {
		name, from, def := m[1], m[2], m[3]
		n++
		if want := defaults[name]; def == "" && want != "" {
			t.Errorf("compose.yaml: %s: ${%s:-} replaces coder server %s's default %q with an empty value when .env leaves it blank: write ${%s:-%s}", name, from, version, want, from, want)
		}
	}
	if n < 5 {
		t.Fatalf("found %d settings with a default in compose.yaml; has its format changed?", n)
	}
}

func TestNoSecretLiteralInComposeFile(t *testing.T) {
	raw, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	found, err := FindSecretLiterals(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		t.Errorf("compose.yaml %s", f)
	}
	// The scan must actually see the secret-bearing settings, or it proves nothing.
	for _, k := range []string{"POSTGRES_PASSWORD", "CODER_OIDC_CLIENT_SECRET", "TF_VAR_op_service_account_token", "CODER_PG_CONNECTION_URL"} {
		if !strings.Contains(string(raw), k+": ${") && !strings.Contains(string(raw), k+": postgresql://${") {
			t.Errorf("compose.yaml: %s is not set from an interpolation", k)
		}
	}
}

func TestFindSecretLiterals(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		want int
	}{
		{"interpolated mapping", "environment:\n  DB_PASSWORD: ${DB_PASSWORD:?set it}\n", 0},
		{"literal mapping", "environment:\n  DB_PASSWORD: hunter2\n", 1},
		{"literal list form", "environment:\n  - CODER_OIDC_CLIENT_SECRET=abc\n", 1},
		{"interpolated list form", "environment:\n  - CODER_OIDC_CLIENT_SECRET=${S}\n", 0},
		{"literal around interpolation", "environment:\n  API_TOKEN: x${T}\n", 1},
		{"empty is not a secret", "environment:\n  API_TOKEN: \"\"\n", 0},
		{"URL with literal password", "environment:\n  DB_URL: postgresql://coder:hunter2@db/coder\n", 1},
		{"URL with interpolated password", "environment:\n  DB_URL: postgresql://${U:-coder}:${P:?set P}@db/coder\n", 0},
		{"token shape anywhere", "command: [\"run\", \"ops_eyJzaWduSW5BZGRyZXNzIjoibXkuMXBhc3N3b3JkLmNvbSJ9\"]\n", 1},
		{"token shape in a comment-free label", "labels:\n  note: ghp_abcdefghijklmnopqrstuvwxyz0123456789\n", 1},
		{"plain settings", "environment:\n  CODER_HTTP_ADDRESS: 0.0.0.0:7080\n", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			found, err := FindSecretLiterals([]byte(c.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if len(found) != c.want {
				t.Errorf("found %v, want %d finding(s)", found, c.want)
			}
		})
	}
	if _, err := FindSecretLiterals([]byte("a: [")); err == nil {
		t.Error("broken YAML must be an error")
	}
}

// compose/.env holds the database password and the 1Password token: git must
// never pick it up.
func TestEnvFileIsIgnoredByGit(t *testing.T) {
	cmd := exec.Command("git", "check-ignore", "--no-index", "--quiet", "compose/.env")
	cmd.Dir = ".."
	if err := cmd.Run(); err != nil {
		t.Fatalf("git check-ignore compose/.env: %v (the repository's .gitignore must list compose/.env)", err)
	}
	cmd = exec.Command("git", "check-ignore", "--no-index", "--quiet", "compose/.env.example")
	cmd.Dir = ".."
	if err := cmd.Run(); err == nil {
		t.Fatal("compose/.env.example is ignored by git; it must be committed")
	}
}
