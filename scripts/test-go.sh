#!/usr/bin/env bash
# Go tests for egoagent. The real Codex CLI is installed from npm (pinned, cached)
# and required: a test that needs it fails here instead of skipping.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "$0")/.."

unformatted=$(gofmt -l cmd internal)
if [[ -n $unformatted ]]; then
	die "gofmt would change:"$'\n'"$unformatted"
fi
go vet ./...

EGOAGENT_TEST_CODEX=$(scripts/ensure-codex.sh)
export EGOAGENT_TEST_CODEX EGOAGENT_REQUIRE_CODEX=1
# The Codex simulation (cmd/egoagent/codexsim_test.go) runs minutes of real
# time against timing bounds; it runs alone, after the rest, so that other
# packages' tests do not load the machine under it.
sim='^TestCodexSimulation'
# go test's default of 10 minutes per package is too short for both: on a
# loaded machine cmd/egoagent's own tests take about 9, and the four
# simulations together about 14.
go test -count=1 -timeout 30m -skip "$sim" "$@" ./...
go test -count=1 -timeout 30m -run "$sim" "$@" ./cmd/egoagent
