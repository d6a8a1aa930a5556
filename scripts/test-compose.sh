#!/usr/bin/env bash
# make test-compose: checks the Coder stack in compose/ without a Docker engine.
# compose.yaml and .env.example are loaded with compose-go (compose/ is its own
# Go module, so compose-go stays out of egoagent's dependencies), the Caddyfile
# is validated by the real Caddy at the release the stack runs, and
# scripts/compose.sh is linted and exercised.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v go >/dev/null || { echo "test-compose: go is not on PATH" >&2; exit 1; }
for tool in git shellcheck; do
	command -v "$tool" >/dev/null || { echo "test-compose: $tool is missing; run scripts/deps.sh" >&2; exit 1; }
done

shellcheck scripts/compose.sh scripts/test-compose.sh

# Caddy is built from the Go module proxy once per release and reused.
caddy_version=$(sed -n 's/^[[:space:]]*image:[[:space:]]*caddy:\([0-9][0-9.]*\)[[:space:]]*$/\1/p' compose/compose.yaml)
[[ -n $caddy_version ]] || { echo "test-compose: no pinned caddy image found in compose/compose.yaml" >&2; exit 1; }
caddy_dir="${HOME}/.cache/egoengine/caddy-v${caddy_version}"
if [[ ! -x $caddy_dir/caddy ]]; then
	echo "test-compose: building Caddy v${caddy_version} into ${caddy_dir} (once)" >&2
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	GOBIN="$tmp" go install "github.com/caddyserver/caddy/v2/cmd/caddy@v${caddy_version}"
	mkdir -p "$caddy_dir"
	mv "$tmp/caddy" "$caddy_dir/caddy"
fi

cd compose
go vet ./...
CADDY_BIN="$caddy_dir/caddy" go test -count=1 ./...
echo "test-compose: ok"
