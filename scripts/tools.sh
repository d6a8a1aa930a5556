#!/usr/bin/env bash
# Builds OpenTofu and the Terraform providers the Coder templates use, from the
# Go module proxy, at pinned versions, into ~/.cache/egoengine (override with
# EGOENGINE_CACHE); the kubernetes provider from its source tarball in
# ../shared/vendor (override with EGOENGINE_VENDOR), its dependencies from the
# proxy. Each build lands in a folder named for its version and is reused when
# present, so only the first run is slow (about 15 minutes on two cores).
#
# It also writes a CLI config whose filesystem mirror makes `tofu init` work
# with no network, and an env file other scripts source:
#
#   eval "$(scripts/tools.sh)"      # sets TOFU and TF_CLI_CONFIG_FILE
#   . ~/.cache/egoengine/tools.env  # same, once tools.sh has run
#
# stdout carries only those env lines; progress goes to stderr.
set -euo pipefail

TOFU_VERSION=1.10.6
CODER_PROVIDER_VERSION=2.20.0
ENVBUILDER_PROVIDER_VERSION=1.0.0
# kreuzwerker/terraform-provider-docker's go.mod names another module path, so
# the proxy serves its tags only as pseudo-versions. This one is release v4.6.0.
DOCKER_PROVIDER_VERSION=4.6.0
DOCKER_PROVIDER_MODULE_VERSION=v0.0.0-20260916201441-96d331c98ff4
# The envbuilder provider depends on inet.af/peercred, which the proxy does not
# serve; tailscale's fork is the same code under a path that it does serve.
PEERCRED_REPLACEMENT=github.com/tailscale/peercred@v0.0.0-20250107143737-35a0c7bd7edc
# hashicorp/terraform-provider-kubernetes's module path has no /v3, so the
# proxy serves none of its v2 or v3 tags: the source of this release comes as a
# tarball in the shared vendor folder beside the checkout (its README says
# what it is; SHA256SUMS pins it). Its dependencies come from the proxy.
KUBERNETES_PROVIDER_VERSION=3.2.1
# Where ../shared is not (GitHub's runners), EGOENGINE_KUBERNETES_PROVIDER_SRC
# may name a git checkout of the tag instead; its commit must be this one.
KUBERNETES_PROVIDER_COMMIT=28fb611cb6be20c5059efadd6cbf16b9ad64cd6c
# The coder provider's go.mod asks for this; older toolchains refuse to build it.
GO_MIN_MINOR=26

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
mirror=$cache/tofu-mirror
platform=linux_amd64
# Templates say `source = "coder/coder"`; OpenTofu resolves that host-less
# address to registry.opentofu.org, so the mirror files them under that host.
host=registry.opentofu.org
vendor=${EGOENGINE_VENDOR:-$lib_root/../shared/vendor}

check_go() {
	command -v go >/dev/null || die "go is not on PATH; install Go 1.$GO_MIN_MINOR or later (https://go.dev/dl/)"
	local v minor
	v=$(go env GOVERSION)
	minor=$(sed -E 's/^go1\.([0-9]+).*/\1/' <<<"$v")
	if ! [[ $minor =~ ^[0-9]+$ ]] || ((minor < GO_MIN_MINOR)); then
		# With GOTOOLCHAIN=auto (Go's default) go fetches the newer toolchain
		# from the module proxy by itself; with local it cannot.
		[[ $(go env GOTOOLCHAIN) != local ]] ||
			die "$v is too old and GOTOOLCHAIN=local: the coder provider v$CODER_PROVIDER_VERSION needs Go 1.$GO_MIN_MINOR or later (install it, or set GOTOOLCHAIN=auto)"
		log "$v is older than 1.$GO_MIN_MINOR: go will fetch a newer toolchain for the provider builds"
	fi
}

# writable_copy DIR: the module cache is read-only; builds that need to edit
# go.mod or that sit behind replace directives run in a throwaway copy.
writable_copy() {
	local tmp
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/egoengine-tools.XXXXXX")
	cp -R "$1/." "$tmp/"
	chmod -R u+w "$tmp"
	printf '%s\n' "$tmp"
}

gobuild() { go build -trimpath -ldflags=-s "$@"; }

build_tofu() {
	local dest=$cache/tofu-$TOFU_VERSION/tofu src tmp
	if [[ -x $dest ]]; then return; fi
	log "building OpenTofu v$TOFU_VERSION (several minutes)"
	src=$(go_module_dir "github.com/opentofu/opentofu@v$TOFU_VERSION")
	# `go install` refuses modules with replace directives, so build in a copy.
	tmp=$(writable_copy "$src")
	# version.dev=no: a release build, so `tofu version` says 1.10.6, not 1.10.6-dev.
	(cd "$tmp" && go build -trimpath -ldflags="-s -X github.com/opentofu/opentofu/version.dev=no" -o "$tmp/tofu.bin" ./cmd/tofu)
	install_binary "$tmp/tofu.bin" "$dest"
	rm -rf "$tmp"
}

provider_path() { # NAMESPACE TYPE VERSION
	printf '%s/%s/%s/%s/%s/%s/terraform-provider-%s_v%s\n' "$mirror" "$host" "$1" "$2" "$3" "$platform" "$2" "$3"
}

build_coder_provider() {
	go_tool "github.com/coder/terraform-provider-coder/v2@v$CODER_PROVIDER_VERSION" "$(provider_path coder coder "$CODER_PROVIDER_VERSION")" >/dev/null
}

build_docker_provider() {
	local dest src tmp
	dest=$(provider_path kreuzwerker docker "$DOCKER_PROVIDER_VERSION")
	if [[ -x $dest ]]; then return; fi
	log "building kreuzwerker/docker provider v$DOCKER_PROVIDER_VERSION ($DOCKER_PROVIDER_MODULE_VERSION)"
	src=$(go_module_dir "github.com/kreuzwerker/terraform-provider-docker@$DOCKER_PROVIDER_MODULE_VERSION")
	tmp=$(writable_copy "$src")
	(cd "$tmp" && gobuild -o "$tmp/provider.bin" .)
	install_binary "$tmp/provider.bin" "$dest"
	rm -rf "$tmp"
}

build_envbuilder_provider() {
	local dest src tmp
	dest=$(provider_path coder envbuilder "$ENVBUILDER_PROVIDER_VERSION")
	if [[ -x $dest ]]; then return; fi
	log "building coder/envbuilder provider v$ENVBUILDER_PROVIDER_VERSION"
	src=$(go_module_dir "github.com/coder/terraform-provider-envbuilder@v$ENVBUILDER_PROVIDER_VERSION")
	tmp=$(writable_copy "$src")
	(
		cd "$tmp"
		go mod edit -replace "inet.af/peercred=$PEERCRED_REPLACEMENT"
		# The fork needs a newer golang.org/x/sys; tidy (in this throwaway copy
		# only) updates go.mod and records checksums verified by sum.golang.org.
		go mod tidy
		gobuild -o "$tmp/provider.bin" .
	)
	install_binary "$tmp/provider.bin" "$dest"
	rm -rf "$tmp"
}

# vendored_tarball NAME: the path of NAME in the shared vendor folder, once its
# SHA256 is the one SHA256SUMS there gives for it.
vendored_tarball() {
	local file=$vendor/$1 want have
	[[ -d $vendor ]] || die "no vendor folder at $vendor: the checkout must sit beside ../shared (or set EGOENGINE_VENDOR to the folder holding $1)"
	[[ -f $file ]] || die "$file is missing: $vendor must hold $1 and its line in SHA256SUMS"
	want=$(awk -v f="$1" '$2 == f || $2 == "*" f { print $1 }' "$vendor/SHA256SUMS" 2>/dev/null)
	[[ -n $want ]] || die "$vendor/SHA256SUMS has no line for $1"
	have=$(sha256sum "$file" | cut -d' ' -f1)
	[[ $have == "$want" ]] || die "$file has SHA256 $have, but $vendor/SHA256SUMS says $want: replace the tarball"
	printf '%s\n' "$file"
}

build_kubernetes_provider() {
	local dest tarball tmp
	dest=$(provider_path hashicorp kubernetes "$KUBERNETES_PROVIDER_VERSION")
	if [[ -x $dest ]]; then return; fi
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/egoengine-tools.XXXXXX")
	if [[ -n ${EGOENGINE_KUBERNETES_PROVIDER_SRC:-} ]]; then
		local head
		head=$(git -C "$EGOENGINE_KUBERNETES_PROVIDER_SRC" rev-parse HEAD 2>/dev/null) || die "EGOENGINE_KUBERNETES_PROVIDER_SRC=$EGOENGINE_KUBERNETES_PROVIDER_SRC is not a git checkout"
		[[ $head == "$KUBERNETES_PROVIDER_COMMIT" ]] || die "EGOENGINE_KUBERNETES_PROVIDER_SRC is at commit $head, not v$KUBERNETES_PROVIDER_VERSION's $KUBERNETES_PROVIDER_COMMIT"
		log "building hashicorp/kubernetes provider v$KUBERNETES_PROVIDER_VERSION from $EGOENGINE_KUBERNETES_PROVIDER_SRC (about 5 minutes)"
		git -C "$EGOENGINE_KUBERNETES_PROVIDER_SRC" archive HEAD | tar -x -C "$tmp"
	else
		tarball=$(vendored_tarball "terraform-provider-kubernetes-v$KUBERNETES_PROVIDER_VERSION-src.tar.gz")
		log "building hashicorp/kubernetes provider v$KUBERNETES_PROVIDER_VERSION from $tarball (about 5 minutes)"
		tar -xzf "$tarball" -C "$tmp" --strip-components=1
	fi
	(cd "$tmp" && CGO_ENABLED=0 gobuild -o "$tmp/provider.bin" .)
	install_binary "$tmp/provider.bin" "$dest"
	rm -rf "$tmp"
}

write_config() {
	local rc=$cache/tofurc tmp
	tmp=$(mktemp "$cache/tofurc.XXXXXX")
	cat >"$tmp" <<EOF
# Written by scripts/tools.sh: OpenTofu installs providers only from the local
# mirror of builds, so \`tofu init\` needs no network.
provider_installation {
  filesystem_mirror {
    path    = "$mirror"
    include = ["$host/*/*"]
  }
}
EOF
	mv -f "$tmp" "$rc"
	tmp=$(mktemp "$cache/tools.env.XXXXXX")
	printf 'TOFU=%s\nTF_CLI_CONFIG_FILE=%s\n' "$cache/tofu-$TOFU_VERSION/tofu" "$rc" >"$tmp"
	mv -f "$tmp" "$cache/tools.env"
}

main() {
	mkdir -p "$cache"
	check_go
	build_tofu
	build_coder_provider
	build_docker_provider
	build_envbuilder_provider
	build_kubernetes_provider
	write_config
	TF_CLI_CONFIG_FILE=$cache/tofurc "$cache/tofu-$TOFU_VERSION/tofu" version >/dev/null || die "the built tofu does not run: remove $cache/tofu-$TOFU_VERSION and try again"
	log "OpenTofu:   $cache/tofu-$TOFU_VERSION/tofu"
	log "providers:  $mirror"
	log "CLI config: $cache/tofurc"
	log "env file:   $cache/tools.env"
	cat "$cache/tools.env"
}

main "$@"
