#!/usr/bin/env bash
# make build: bin/egoagent and its 1Password helper bin/egoagent-op, static
# (no cgo), stripped, with paths trimmed and the version from git (the Nix
# build uses the flake's revision instead).
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(git describe --always --dirty 2>/dev/null || echo dev)
mkdir -p bin
# urfave_cli_no_docs drops urfave/cli's man-page generator, whose markdown
# package costs start-up time in every run of `egoagent metadata`.
for cmd in egoagent egoagent-op; do
	CGO_ENABLED=0 go build -tags urfave_cli_no_docs -trimpath -ldflags "-s -w -X main.version=$version" -o "bin/$cmd" "./cmd/$cmd"
done
echo "build: bin/egoagent bin/egoagent-op $version"
