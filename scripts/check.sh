#!/usr/bin/env bash
# make check: the quick loop, under a minute on a warm machine. Formatting,
# go vet and staticcheck over the three Go modules (the main one, e2e/ and
# compose/), shellcheck over the shell scripts, then the unit tests with
# -short. What needs servers, engines, OpenTofu or Nix stays in `make test`.
#
# staticcheck is built from the Go module proxy once into the cache.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "$0")/.."

STATICCHECK_VERSION=v0.8.2
modules=(. e2e compose)
# A test that hangs should fail the quick loop, not hold it for go test's 10 minutes.
test_timeout=3m

command -v go >/dev/null || die "go is not on PATH"
command -v shellcheck >/dev/null || die "shellcheck is missing; run scripts/deps.sh"
staticcheck=$(go_tool "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION" "$cache/staticcheck-$STATICCHECK_VERSION/staticcheck")

failed=()
# step NAME COMMAND...: runs one check, goes on after a failure so that one
# run lists every problem; the script fails at the end.
step() {
	local name=$1 t0=$SECONDS
	shift
	if "$@"; then
		log "ok    $name ($((SECONDS - t0))s)"
	else
		log "FAIL  $name ($((SECONDS - t0))s)"
		failed+=("$name")
	fi
}

gofmt_clean() {
	local out
	out=$(git ls-files -z --cached --others --exclude-standard -- '*.go' | xargs -0r gofmt -l)
	[[ -z $out ]] || { printf 'gofmt would change:\n%s\n' "$out" >&2; return 1; }
}

# in_modules COMMAND...: runs COMMAND in each module's folder; fails if any did.
in_modules() {
	local m rc=0
	for m in "${modules[@]}"; do
		(cd "$m" && "$@") >&2 || rc=1
	done
	return "$rc"
}

# Several at a time: one shellcheck -x per script is slow in a row.
shell_scripts() {
	git ls-files -z --cached --others --exclude-standard -- '*.sh' | xargs -0r -n 4 -P "$(nproc)" shellcheck -x
}

# The end-to-end tests need a Coder server and a Docker Engine (make e2e),
# and the Caddyfile test a Caddy built by make test-compose; each module's
# other tests are quick. The modules run side by side (the main one takes
# longest), each into its own file, shown whole once all are done.
unit_tests() {
	local out rc=0 m
	local -A pid
	out=$(mktemp -d "${TMPDIR:-/tmp}/egoengine-check.XXXXXX")
	go test -short -count=1 -timeout "$test_timeout" ./... >"$out/main" 2>&1 &
	pid[main]=$!
	(cd e2e && go test -short -count=1 -timeout "$test_timeout" -skip '^(TestEndToEnd|TestDockerWorkspace|TestComposeStack|TestComposeOIDC|TestEnvbuilderWorkspace|TestKubernetesWorkspace)$' ./...) >"$out/e2e" 2>&1 &
	pid[e2e]=$!
	(cd compose && go test -short -count=1 -timeout "$test_timeout" -skip '^TestCaddyfile' ./...) >"$out/compose" 2>&1 &
	pid[compose]=$!
	for m in main e2e compose; do
		wait "${pid[$m]}" || rc=1
		cat "$out/$m" >&2
	done
	rm -rf "$out"
	return "$rc"
}

t0=$SECONDS
step gofmt gofmt_clean
step "go vet" in_modules go vet ./...
step "staticcheck $STATICCHECK_VERSION" in_modules "$staticcheck" ./...
step shellcheck shell_scripts
step "go test -short" unit_tests

((${#failed[@]} == 0)) || die "failed: ${failed[*]} ($((SECONDS - t0))s)"
log "all passed in $((SECONDS - t0))s"
