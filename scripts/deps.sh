#!/usr/bin/env bash
# Installs the system packages that `make test` needs on Debian or Ubuntu.
# Go and Node.js/npm are expected on PATH (the Codex CLI comes from npm at test time).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# One line per area; each lists the Debian packages that area's tests need.
packages=(
	git make ca-certificates curl   # everything
	shellcheck                      # check: lints the shell scripts (staticcheck comes from the Go module proxy)
	nodejs npm                      # test-go: the real Codex CLI
	nix-bin shellcheck jq lua5.4   # test-nix: nix-instantiate, nix hash, shellcheck, lock file, Neovim Lua
	python3 python3-yaml python3-tomlkit openssl  # test-nix: workflow properties (a TLS stand-in for GHCR); the image config as TOML
	shellcheck util-linux jq        # test-templates: shellcheck; setpriv for the init-wrapper test; jq for the update plan
	shellcheck                      # test-compose: lints scripts/compose.sh (Caddy comes from the Go module proxy)
	postgresql util-linux           # e2e: Coder's database; runuser, setsid for the workspace stand-in
	docker.io iptables iproute2 debootstrap  # e2e: the Docker test's own engine, its firewall rules and bridge; the stand-in image
	containerd runc ipset apache2-utils gcc libc6-dev  # e2e: the Kubernetes node's runtime, kube-router's sets, its registry's htpasswd, the static pause binary
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Node.js and npm may come from outside Debian (nodesource, nvm): a working
# npm on PATH is as good as the package.
if command -v npm >/dev/null 2>&1; then
	kept=()
	for p in "${missing[@]}"; do [[ $p == nodejs || $p == npm ]] || kept+=("$p"); done
	missing=("${kept[@]}")
fi
if ((${#missing[@]})); then
	log "installing ${missing[*]}"
	sudo_cmd=()
	[[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
	"${sudo_cmd[@]}" apt-get update -qq
	DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v go >/dev/null || [[ -x /usr/local/go/bin/go ]] || die "Go is not installed; install Go 1.24 or later (the end-to-end tests need 1.26: an older go fetches that toolchain from the module proxy)"
