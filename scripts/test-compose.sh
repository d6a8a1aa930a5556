#!/usr/bin/env bash
# make test-compose: checks the Coder stack in compose/ without a Docker engine.
# compose.yaml and .env.example are loaded with compose-go (compose/ is its own
# Go module, so compose-go stays out of egoagent's dependencies), the Caddyfile
# is validated by the real Caddy at the release the stack runs, and
# scripts/compose.sh is linted and exercised.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "$0")/.."

command -v go >/dev/null || die "go is not on PATH"
for tool in git shellcheck; do
	command -v "$tool" >/dev/null || die "$tool is missing; run scripts/deps.sh"
done

shellcheck -x scripts/compose.sh scripts/test-compose.sh

# Caddy is built from the Go module proxy once per release and reused.
caddy=$(caddy_binary)

cd compose
go vet ./...
CADDY_BIN="$caddy" go test -count=1 ./...
log ok
