#!/usr/bin/env bash
# Installs the pinned Codex CLI from the npm registry into
# ~/.cache/egoengine/codex-<version> (once; reused afterwards) and prints the
# absolute path of its native executable on stdout. Everything else goes to
# stderr, so callers can write: EGOAGENT_TEST_CODEX=$(scripts/ensure-codex.sh)
#
# The native binary is run directly rather than through the npm launcher
# (bin/codex.js) so that tests exercise what egoagent runs in the image and
# do not depend on Node.js being on PATH at test time.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

version=0.169.0
prefix=$cache/codex-$version

case "$(uname -s)-$(uname -m)" in
	Linux-x86_64) triple=x86_64-unknown-linux-musl ;;
	Linux-aarch64) triple=aarch64-unknown-linux-musl ;;
	*) die "no native Codex CLI for $(uname -s) $(uname -m)" ;;
esac

# find_native prints the native executable inside the installed package, or
# nothing. The layout has moved between releases (vendor/<triple>/codex/codex
# in the main package, or a per-platform optional dependency), so search
# node_modules for the triple rather than hard-coding one path.
find_native() {
	[[ -d $prefix/node_modules ]] || return 0
	find "$prefix/node_modules" -type f -name codex -perm -u+x -path "*$triple*" 2>/dev/null | sort | head -n 1
}

native=$(find_native)
if [[ -z $native ]]; then
	command -v npm >/dev/null || die "npm is not on PATH; run scripts/deps.sh (Debian packages nodejs npm)"
	log "installing @openai/codex@$version into $prefix"
	mkdir -p "$prefix"
	# --prefix keeps the install out of the repository and out of the global
	# npm folder; the package.json npm writes there is the cache's own.
	npm install --prefix "$prefix" --save-exact --no-audit --no-fund --loglevel=error \
		"@openai/codex@$version" >&2
	native=$(find_native)
fi
[[ -n $native ]] || die "@openai/codex@$version is installed in $prefix but holds no native codex for $triple"

# A quick sanity run: the binary must start and report the pinned version.
got=$("$native" --version 2>/dev/null || true)
[[ $got == *"$version"* ]] || die "$native reports '${got:-nothing}', expected version $version; remove $prefix and run again"
printf '%s\n' "$native"
