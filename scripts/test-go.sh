#!/usr/bin/env bash
# Go tests for egoagent. The real Codex CLI is installed from npm (pinned, cached)
# and required: a test that needs it fails here instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

unformatted=$(gofmt -l cmd internal)
if [[ -n $unformatted ]]; then
	echo "test-go: gofmt would change:" >&2
	echo "$unformatted" >&2
	exit 1
fi
go vet ./...

EGOAGENT_TEST_CODEX=$(scripts/ensure-codex.sh)
export EGOAGENT_TEST_CODEX EGOAGENT_REQUIRE_CODEX=1
go test -count=1 "$@" ./...
