#!/usr/bin/env bash
# Recomputes the vendorHash of nix/egoagent/package.nix: the NAR hash of the
# vendor/ folder that `go mod vendor` makes, which is what buildGoModule
# checks its dependency download against. Run it after every go.mod change.
#
#   scripts/vendor-hash.sh          write nix/egoagent/vendor-hash.nix
#   scripts/vendor-hash.sh --print  print the hash, change nothing (test-nix)
#
# It vendors a copy of the files the Nix build sees (go.mod, go.sum, cmd/,
# internal/, bench/: see nix/egoagent/package.nix), never the working tree itself.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "$0")/.."

mode='write'
case "${1:-}" in
"") ;;
--print) mode=print ;;
*)
	echo "usage: $0 [--print]" >&2
	exit 2
	;;
esac

command -v nix >/dev/null || die "nix is not installed (Debian: apt-get install nix-bin)"
# Debian's nix-bin has no nixbld group; nothing here builds, so say so.
export NIX_CONFIG="build-users-group =
experimental-features = nix-command"

tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
mkdir "$tmp/src"
cp go.mod go.sum "$tmp/src/"
cp -R cmd internal bench "$tmp/src/"
if ! (cd "$tmp/src" && GOWORK=off GOFLAGS='' go mod vendor) >"$tmp/log" 2>&1; then
	die "go mod vendor failed:"$'\n'"$(cat "$tmp/log")"
fi

if [[ -d $tmp/src/vendor ]]; then
	hash="\"$(nix hash path "$tmp/src/vendor")\""
else
	hash=null # no dependencies: buildGoModule wants null
fi

if [[ $mode == print ]]; then
	echo "$hash"
	exit 0
fi
target=nix/egoagent/vendor-hash.nix
old=$(cat "$target" 2>/dev/null || true)
printf '%s\n' "$hash" >"$target"
if [[ $old == "$hash" ]]; then
	echo "vendor-hash: $target unchanged ($hash)"
else
	echo "vendor-hash: $target: ${old:-none} -> $hash"
fi
