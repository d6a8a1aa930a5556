#!/usr/bin/env bash
# make build: bin/egoagent, static (no cgo), stripped, with paths trimmed and
# the version from git (the Nix build uses the flake's revision instead).
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(git describe --always --dirty 2>/dev/null || echo dev)
mkdir -p bin
# urfave_cli_no_docs drops urfave/cli's man-page generator, whose markdown
# package costs start-up time in every run of `egoagent metadata`.
CGO_ENABLED=0 go build -tags urfave_cli_no_docs -trimpath -ldflags "-s -w -X main.version=$version" -o bin/egoagent ./cmd/egoagent
echo "build: bin/egoagent $version"
