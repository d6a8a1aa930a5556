#!/usr/bin/env bash
# The workspace image stand-in (docs/e2e.md, "The image"): the Nix-built
# egoengine image cannot be built here (nixpkgs cannot be fetched), so the
# Docker end-to-end test runs an image made from Debian packages that keeps
# the same promises wherever it can, under the real image's name.
#
#   scripts/standin-image.sh rootfs
#       prints the path of the Debian root filesystem tarball, made once with
#       `debootstrap --variant=minbase` and cached in ~/.cache/egoengine
#       (EGOENGINE_CACHE), keyed by Debian suite and package list
#   scripts/standin-image.sh build TAG [--egoagent PATH] [--egoagent-op PATH] [--codex PATH]
#       with DOCKER_HOST naming a Docker Engine (scripts/docker-harness.sh),
#       imports that tarball and layers on it what the egoengine image
#       promises; tags it ghcr.io/veraticus/nix-config/egoengine:TAG and
#       prints that name
#
# What the stand-in holds: user joshsymonds 1000:1000 with home
# /home/joshsymonds and login shell zsh, /bin/sh, /usr/bin/env, curl, CA
# certificates, /tmp 1777, git, zsh, Neovim and direnv from Debian, egoagent
# and egoagent-op from this checkout (default bin/, from scripts/build.sh),
# the Codex CLI (scripts/ensure-codex.sh's native binary) when it is there,
# /etc/egoagent/config.toml (the 1Password source, the Codex secret), and a
# small /nix/store with home-files and home-path recorded in /etc/egoengine
# for `egoagent image link-home`. What it cannot hold (the 1Password CLI,
# starship, Home Manager's real files) is listed in /etc/egoengine/stand-in,
# which `egoagent image verify` reports.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
SUITE=${STANDIN_SUITE:-bookworm}
MIRROR=${STANDIN_MIRROR:-http://deb.debian.org/debian}
IMAGE=ghcr.io/veraticus/nix-config/egoengine
# Debian's share of the image's promises. Changing the list changes the
# cache key: the tarball is made again.
PACKAGES=ca-certificates,curl,zsh,git,neovim,direnv

rootfs_path() {
	local key
	key=$(printf '%s %s\n' "$SUITE" "$PACKAGES" | sha256sum | cut -c1-12)
	printf '%s/standin-rootfs/debian-%s-minbase-%s.tar\n' "$cache" "$SUITE" "$key"
}

# rootfs: the debootstrap tarball, made once (as root: debootstrap chroots).
rootfs() {
	local out tmp t0
	out=$(rootfs_path)
	if [[ -s $out ]]; then
		printf '%s\n' "$out"
		return
	fi
	command -v debootstrap >/dev/null || die "debootstrap is missing: run scripts/deps.sh (Debian package debootstrap)"
	((EUID == 0)) || die "debootstrap needs root (it chroots into the new tree)"
	mkdir -p "$(dirname "$out")"
	tmp=$(mktemp -d "$(dirname "$out")/build.XXXXXX")
	# shellcheck disable=SC2064 # the path is fixed now
	trap "rm -rf '$tmp'" EXIT
	t0=$(date +%s)
	log "debootstrap $SUITE (minbase + $PACKAGES) from $MIRROR: a few minutes, once"
	debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$tmp/root" "$MIRROR" >"$tmp/debootstrap.log" 2>&1 ||
		die "debootstrap failed; the end of its log:$(printf '\n')$(tail -n 20 "$tmp/debootstrap.log")"
	# What a container does not need: downloaded packages, package lists.
	rm -rf "$tmp/root/var/cache/apt/archives/"*.deb "$tmp/root/var/lib/apt/lists/"*
	tar -C "$tmp/root" --numeric-owner -cf "$tmp/rootfs.tar" .
	mv -f "$tmp/rootfs.tar" "$out"
	rm -rf "$tmp"
	trap - EXIT
	log "rootfs: $out ($(du -m "$out" | cut -f1) MB, $(($(date +%s) - t0))s)"
	printf '%s\n' "$out"
}

# The stand-in's waivers: each line names a check of `egoagent image verify`
# that this image cannot pass, and why. verify reports them by name and
# counts them apart; it still fails any other check.
standin_list() {
	cat <<'EOF'
# egoengine stand-in image (scripts/standin-image.sh): not the Nix-built image.
# Each line: the name of an `egoagent image verify` check this image cannot
# keep, a tab, and why. Every other promise is checked as for the real image.
tool op	the 1Password CLI is not packaged by Debian and cannot be downloaded here
tool starship	starship is not packaged by Debian bookworm
home files	a one-file stand-in generation in /nix/store, not Home Manager's files (nix/home)
egoagent config	the test's configuration: the json check (the test vault holds no Codex sign-in), an hourly schedule, no mirror
EOF
}

build() {
	local tag=${1:-} egoagent=$root/bin/egoagent egoagent_op=$root/bin/egoagent-op codex="" ctx base tarball key t0
	[[ -n $tag ]] || die "usage: scripts/standin-image.sh build TAG [--egoagent PATH] [--egoagent-op PATH] [--codex PATH]"
	[[ $tag =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "'$tag' is not a Docker tag"
	shift
	while (($#)); do
		case $1 in
		--egoagent) egoagent=$2; shift 2 ;;
		--egoagent-op) egoagent_op=$2; shift 2 ;;
		--codex) codex=$2; shift 2 ;;
		*) die "unknown option '$1'" ;;
		esac
	done
	[[ -n ${DOCKER_HOST:-} ]] || die "DOCKER_HOST is not set: run this under scripts/docker-harness.sh, never against a Docker you did not start"
	[[ -x $egoagent ]] || die "$egoagent is not an executable file (scripts/build.sh makes bin/egoagent)"
	[[ -x $egoagent_op ]] || die "$egoagent_op is not an executable file"
	if [[ -z $codex ]]; then
		codex=$("$root/scripts/ensure-codex.sh" 2>/dev/null) || codex=""
		[[ -n $codex ]] || log "no Codex CLI (scripts/ensure-codex.sh failed): the image goes without it, and verify will say so"
	fi
	t0=$(date +%s)
	tarball=$(rootfs)
	key=$(basename "$tarball" .tar)
	base=egoengine-standin-base:${key#debian-}
	if ! docker image inspect "$base" >/dev/null 2>&1; then
		docker import --message "debootstrap $SUITE minbase" "$tarball" "$base" >/dev/null
		log "imported $base in $(($(date +%s) - t0))s"
	fi
	ctx=$(mktemp -d "${TMPDIR:-/tmp}/standin-image.XXXXXX")
	# shellcheck disable=SC2064
	trap "rm -rf '$ctx'" RETURN
	mkdir -p "$ctx/bin"
	cp "$egoagent" "$ctx/bin/egoagent"
	cp "$egoagent_op" "$ctx/bin/egoagent-op"
	if [[ -n $codex ]]; then cp "$codex" "$ctx/bin/codex"; fi
	write_config >"$ctx/config.toml"
	standin_list >"$ctx/stand-in"
	write_dockerfile "$base" >"$ctx/Dockerfile"
	DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE:$tag" "$ctx" >/dev/null
	log "built $IMAGE:$tag in $(($(date +%s) - t0))s"
	printf '%s:%s\n' "$IMAGE" "$tag"
}

# write_config: egoagent's configuration in the stand-in: the image's source
# (1Password) and first secret (the Codex credentials, at the same path), with
# two differences from nix/egoagent/settings.nix, both for the test: an hourly
# schedule (the shortest the 1Password source allows) and the `json` check,
# since the test's vault holds a JSON file, not a Codex sign-in.
write_config() {
	cat <<'EOF'
[source]
kind = "1password"

[schedule]
refresh = "@every 1h"

[[secret]]
name = "codex"
ref = "op://egoengine/Codex Auth/auth.json"
path = "~/.codex/auth.json"
check = "json"
EOF
}

write_dockerfile() {
	cat <<EOF
FROM $1
# The workspace user, as the Nix image's fakeNss lines make it.
RUN groupadd -g 1000 joshsymonds \\
 && useradd -u 1000 -g 1000 -d /home/joshsymonds -s /usr/bin/zsh -m joshsymonds \\
 && chmod 1777 /tmp
COPY bin/ /usr/local/bin/
COPY config.toml /etc/egoagent/config.toml
COPY stand-in /etc/egoengine/stand-in
# A small Home Manager generation: home-files and home-path in /nix/store,
# recorded where egoagent image link-home reads them.
RUN set -e; s=/nix/store/00000000000000000000000000standin; \\
 mkdir -p \$s-home-manager-files/.config/egoengine \$s-home-manager-path/bin; \\
 echo 'linked by egoagent image link-home (stand-in image)' >\$s-home-manager-files/.config/egoengine/stand-in; \\
 ln -s /usr/local/bin/egoagent \$s-home-manager-path/bin/egoagent; \\
 ln -s \$s-home-manager-files /etc/egoengine/home-files; \\
 ln -s \$s-home-manager-path /etc/egoengine/home-path
ENV LANG=C.UTF-8 PATH=/home/joshsymonds/.nix-profile/bin:/usr/local/bin:/usr/bin:/bin
USER joshsymonds
WORKDIR /home/joshsymonds
EOF
}

case ${1:-} in
rootfs) rootfs ;;
build) shift; build "$@" ;;
*) die "usage: scripts/standin-image.sh rootfs | build TAG [--egoagent PATH] [--egoagent-op PATH] [--codex PATH]" ;;
esac
