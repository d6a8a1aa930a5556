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
#   scripts/standin-image.sh stack --coder PATH --tofu PATH --tofu-config FILE --caddy PATH
#       with DOCKER_HOST as for build, makes stand-ins of the images
#       compose/compose.yaml names (Coder, PostgreSQL, Caddy) from the same
#       tarball and prints three lines, coder=IMAGE, postgres=IMAGE and
#       caddy=IMAGE (docs/operations.md, "Stand-in images (tests only)")
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
# trixie (Debian 13): its PostgreSQL is 17, the major release compose.yaml
# ships, so the stack's stand-in database is the one the docs' backup and
# restore commands meet.
SUITE=${STANDIN_SUITE:-trixie}
MIRROR=${STANDIN_MIRROR:-http://deb.debian.org/debian}
IMAGE=ghcr.io/veraticus/nix-config/egoengine
# Debian's share of the images' promises: the workspace image's, then
# PostgreSQL for the stack's database and wget for Caddy's healthcheck (one
# tarball for all, so a cold machine runs debootstrap once). Changing the
# list changes the cache key: the tarball is made again.
PACKAGES=ca-certificates,curl,zsh,git,neovim,direnv,postgresql,wget

rootfs_path() {
	local key
	key=$(printf '%s %s\n' "$SUITE" "$PACKAGES" | sha256sum | cut -c1-12)
	printf '%s/standin-rootfs/debian-%s-minbase-%s.tar\n' "$cache" "$SUITE" "$key"
}

# remove_build DIR: removes a debootstrap folder. A debootstrap that was
# killed (an interrupted make test's warm-up) leaves the host's /proc mounted
# inside it: whatever is mounted below DIR is unmounted first, and rm never
# crosses into another file system.
remove_build() {
	local mnt
	[[ -d $1 ]] || return 0
	while read -r _ mnt _; do
		if [[ $mnt == "$1"/* ]]; then umount -l "$mnt" 2>/dev/null || true; fi
	done < <(tac /proc/mounts)
	rm -rf --one-file-system "$1"
}

# rootfs: the debootstrap tarball, made once (as root: debootstrap chroots).
rootfs() {
	local out tmp t0 old
	out=$(rootfs_path)
	hold_lock "standin-rootfs"
	if [[ -s $out ]]; then
		printf '%s\n' "$out"
		return
	fi
	# What an interrupted build left (the lock says no build runs now).
	for old in "$(dirname "$out")"/build.*; do
		if [[ -d $old ]]; then remove_build "$old"; fi
	done
	command -v debootstrap >/dev/null || die "debootstrap is missing: run scripts/deps.sh (Debian package debootstrap)"
	((EUID == 0)) || die "debootstrap needs root (it chroots into the new tree)"
	mkdir -p "$(dirname "$out")"
	tmp=$(mktemp -d "$(dirname "$out")/build.XXXXXX")
	# shellcheck disable=SC2064 # the path is fixed now
	trap "remove_build '$tmp'" EXIT
	t0=$(date +%s)
	log "debootstrap $SUITE (minbase + $PACKAGES) from $MIRROR: a few minutes, once"
	debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$tmp/root" "$MIRROR" >"$tmp/debootstrap.log" 2>&1 ||
		die "debootstrap failed; the end of its log:"$'\n'"$(tail -n 20 "$tmp/debootstrap.log")"
	# What a container does not need: downloaded packages, package lists.
	rm -rf "$tmp/root/var/cache/apt/archives/"*.deb "$tmp/root/var/lib/apt/lists/"*
	tar -C "$tmp/root" --numeric-owner -cf "$tmp/rootfs.tar" .
	mv -f "$tmp/rootfs.tar" "$out"
	remove_build "$tmp"
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
tool starship	starship is not among the stand-in's Debian packages
home files	a one-file stand-in generation in /nix/store, not Home Manager's files (nix/home)
egoagent config	the test's configuration: the json check (the test vault holds no Codex sign-in), an hourly schedule, no mirror
EOF
}

# need_engine: the images go only into an engine of the run's own.
need_engine() {
	[[ -n ${DOCKER_HOST:-} ]] || die "DOCKER_HOST is not set: run this under scripts/docker-harness.sh, never against a Docker you did not start"
}

# base_image: imports the rootfs tarball into the engine (once per engine) and
# prints the base image's name, which carries the tarball's key.
base_image() {
	local tarball key base t0
	t0=$(date +%s)
	tarball=$(rootfs)
	key=$(basename "$tarball" .tar)
	base=egoengine-standin-base:${key#debian-}
	if ! docker image inspect "$base" >/dev/null 2>&1; then
		docker import --message "debootstrap $SUITE minbase" "$tarball" "$base" >/dev/null
		log "imported $base in $(($(date +%s) - t0))s"
	fi
	printf '%s\n' "$base"
}

# docker_build NAME CONTEXT: the classic builder (no BuildKit, nothing to
# pull), which leaves no container behind even when a step fails; its
# output goes to CONTEXT.log and is shown only when it fails.
docker_build() {
	if ! DOCKER_BUILDKIT=0 docker build --force-rm --tag "$1" "$2" >"$2.log" 2>&1; then
		die "docker build of $1 failed; the end of its output:"$'\n'"$(tail -n 20 "$2.log")"
	fi
}

build() {
	local tag=${1:-} egoagent=$root/bin/egoagent egoagent_op=$root/bin/egoagent-op codex="" ctx base t0
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
	need_engine
	[[ -x $egoagent ]] || die "$egoagent is not an executable file (scripts/build.sh makes bin/egoagent)"
	[[ -x $egoagent_op ]] || die "$egoagent_op is not an executable file"
	if [[ -z $codex ]]; then
		codex=$("$root/scripts/ensure-codex.sh" 2>/dev/null) || codex=""
		[[ -n $codex ]] || log "no Codex CLI (scripts/ensure-codex.sh failed): the image goes without it, and verify will say so"
	fi
	t0=$(date +%s)
	base=$(base_image)
	ctx=$(mktemp -d "${TMPDIR:-/tmp}/standin-image.XXXXXX")
	# shellcheck disable=SC2064 # the path is fixed now; EXIT, so that a die cleans up too
	trap "rm -rf '$ctx' '$ctx.log'" EXIT
	mkdir -p "$ctx/bin"
	cp "$egoagent" "$ctx/bin/egoagent"
	cp "$egoagent_op" "$ctx/bin/egoagent-op"
	if [[ -n $codex ]]; then cp "$codex" "$ctx/bin/codex"; fi
	write_config >"$ctx/config.toml"
	standin_list >"$ctx/stand-in"
	write_dockerfile "$base" >"$ctx/Dockerfile"
	docker_build "$IMAGE:$tag" "$ctx"
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

# The stack: stand-ins of the three images compose/compose.yaml names, which
# cannot be pulled here, built under names of their own (they are not those
# images) and laid out as those images are, as far as compose.yaml and
# docs/operations.md rely on them.
STACK=egoengine-standin
STACK_USAGE="scripts/standin-image.sh stack --coder PATH --tofu PATH --tofu-config FILE --caddy PATH"

stack() {
	local coder="" tofu="" tofu_config="" caddy="" mirror work base t0 coder_version caddy_version pg_major
	while (($#)); do
		(($# >= 2)) || die "usage: $STACK_USAGE"
		case $1 in
		--coder) coder=$2 ;;
		--tofu) tofu=$2 ;;
		--tofu-config) tofu_config=$2 ;;
		--caddy) caddy=$2 ;;
		*) die "unknown option '$1'; usage: $STACK_USAGE" ;;
		esac
		shift 2
	done
	[[ -n $coder && -n $tofu && -n $tofu_config && -n $caddy ]] || die "usage: $STACK_USAGE"
	need_engine
	[[ -x $coder ]] || die "$coder is not an executable file (scripts/e2e.sh build-coder prints Coder's path)"
	[[ -x $tofu ]] || die "$tofu is not an executable file (scripts/tools.sh prints TOFU)"
	[[ -x $caddy ]] || die "$caddy is not an executable file (scripts/test-compose.sh builds Caddy)"
	[[ -r $tofu_config ]] || die "cannot read the OpenTofu CLI config $tofu_config (scripts/tools.sh prints TF_CLI_CONFIG_FILE)"
	# The first `path` of a filesystem_mirror block: scripts/tools.sh writes one.
	mirror=$(awk '/filesystem_mirror/ { m = 1 } m && /^[[:space:]]*path[[:space:]]*=/ { sub(/^[^"]*"/, ""); sub(/".*$/, ""); print; exit }' "$tofu_config")
	[[ -n $mirror ]] || die "$tofu_config has no provider_installation { filesystem_mirror { path = ... } }"
	[[ -d $mirror ]] || die "the provider mirror $mirror named by $tofu_config is not a folder"

	# The official images' tags: Coder's with its "v" (and "+" made "-", as
	# Coder's scripts/image_tag.sh does), Caddy's without.
	# (`coder --version` ends its lines with CRLF.)
	coder_version=$("$coder" --version 2>/dev/null | awk 'NR == 1 && $1 == "Coder" { sub(/\r$/, "", $2); print $2 }') || true
	[[ $coder_version =~ ^v[0-9]+\.[0-9]+\.[0-9]+[A-Za-z0-9.+-]*$ ]] || die "'$coder --version' did not say 'Coder vX.Y.Z'"
	coder_version=${coder_version//+/-}
	caddy_version=$("$caddy" version 2>/dev/null | awk 'NR == 1 { sub(/\r$/, "", $1); print $1 }') || true
	if [[ ! $caddy_version =~ ^v?[0-9]+\.[0-9]+ ]]; then
		# A Caddy built by `go install .../cmd/caddy@vX` (scripts/test-compose.sh)
		# is its own main module, which `caddy version` does not look at: it
		# says "unknown". build-info names the module's version.
		caddy_version=$("$caddy" build-info 2>/dev/null |
			awk '($1 == "mod" || $1 == "dep") && $2 == "github.com/caddyserver/caddy/v2" { print $3; exit }') || true
	fi
	caddy_version=${caddy_version#v}
	[[ $caddy_version =~ ^[0-9]+\.[0-9]+\.[0-9]+[A-Za-z0-9.-]*$ ]] || die "neither '$caddy version' nor '$caddy build-info' gave Caddy's version"

	t0=$(date +%s)
	base=$(base_image)
	# Debian's PostgreSQL major release, for the tag and the PATH.
	pg_major=$(docker run --rm --network none "$base" ls /usr/lib/postgresql)
	[[ $pg_major =~ ^[0-9]+$ ]] || die "expected one PostgreSQL release in /usr/lib/postgresql of $base, found: $pg_major"

	work=$(mktemp -d "${TMPDIR:-/tmp}/standin-stack.XXXXXX")
	# shellcheck disable=SC2064 # the path is fixed now; EXIT, so that a die cleans up too
	trap "rm -rf '$work'" EXIT
	mkdir -p "$work/coder" "$work/postgres" "$work/caddy"

	cp "$coder" "$work/coder/coder"
	cp "$tofu" "$work/coder/terraform"
	chmod 755 "$work/coder/coder" "$work/coder/terraform"
	cp -RL "$mirror" "$work/coder/providers"
	coder_cli_config >"$work/coder/cli.tfrc"
	coder_dockerfile "$base" "$coder_version" >"$work/coder/Dockerfile"
	docker_build "$STACK/coder:$coder_version" "$work/coder"
	log "built $STACK/coder:$coder_version ($(($(date +%s) - t0))s so far)"

	cp "$root/scripts/standin/postgres-entrypoint.sh" "$work/postgres/docker-entrypoint.sh"
	chmod 755 "$work/postgres/docker-entrypoint.sh"
	postgres_dockerfile "$base" "$pg_major" >"$work/postgres/Dockerfile"
	docker_build "$STACK/postgres:$pg_major" "$work/postgres"
	log "built $STACK/postgres:$pg_major ($(($(date +%s) - t0))s so far)"

	cp "$caddy" "$work/caddy/caddy"
	chmod 755 "$work/caddy/caddy"
	caddy_files "$work/caddy"
	caddy_dockerfile "$base" "$caddy_version" >"$work/caddy/Dockerfile"
	docker_build "$STACK/caddy:$caddy_version" "$work/caddy"
	log "built $STACK/caddy:$caddy_version; the three images in $(($(date +%s) - t0))s"

	printf 'coder=%s\n' "$STACK/coder:$coder_version"
	printf 'postgres=%s\n' "$STACK/postgres:$pg_major"
	printf 'caddy=%s\n' "$STACK/caddy:$caddy_version"
}

# The image's own OpenTofu CLI config: the copy of the mirror, nothing else
# (no registry is reachable from the test's engine).
coder_cli_config() {
	cat <<'EOF'
# egoengine stand-in (scripts/standin-image.sh stack): providers come only
# from this copy of the test's mirror; no registry can be reached.
provider_installation {
  filesystem_mirror {
    path = "/usr/local/share/terraform/providers"
  }
}
EOF
}

# Coder as its official image lays it out (Coder's scripts/Dockerfile and
# Dockerfile.base): user coder 1000:1000, home /home/coder, login shell bash,
# the binary at /opt/coder (PATH ends in /opt), `coder server` as the
# entrypoint, terraform in /usr/local/bin, curl, wget, git, CA certificates.
# The differences, each for the test:
# - terraform is OpenTofu (the official image has HashiCorp's Terraform 1.13,
#   which cannot be downloaded here; Coder accepts any terraform reporting a
#   version from 1.1 to 1.13.x, and OpenTofu 1.10 does);
# - TF_CLI_CONFIG_FILE points at a provider mirror in the image, since
#   registry.terraform.io and registry.opentofu.org cannot be reached;
# - CODER_CACHE_DIRECTORY is /var/cache/coder, holding
#   site/orig/bin/coder-linux-amd64, a link to /opt/coder. This Coder is built
#   without the web UI, and such a server serves the agent binaries that
#   workspaces download from ${CODER_CACHE_DIRECTORY}/site/orig/bin (and keeps
#   its compressed copies in site/compressed). The default cache, ~/.cache/coder, is
#   inside /home/coder, where compose.yaml mounts the named volume coder_home:
#   Docker copies image content into a volume only when it creates it, so a
#   volume made earlier (or by another image) would hide the link. Outside the
#   volume the image's link is always what the server sees. The cost: the
#   provisioner's work folders and provider cache go with the container,
#   which matters little with providers copied from a local mirror;
# - no openssh-client.
coder_dockerfile() {
	cat <<EOF
FROM $1
LABEL org.opencontainers.image.title="Coder (egoengine stand-in)" \\
 org.opencontainers.image.description="stand-in of ghcr.io/coder/coder for egoengine's tests (scripts/standin-image.sh stack)" \\
 org.opencontainers.image.version="$2"
RUN groupadd -g 1000 coder \\
 && useradd -u 1000 -g 1000 -d /home/coder -s /bin/bash -m coder \\
 && chmod 1777 /tmp
COPY --chown=1000:1000 coder /opt/coder
COPY terraform /usr/local/bin/terraform
COPY providers/ /usr/local/share/terraform/providers/
COPY cli.tfrc /usr/local/share/terraform/cli.tfrc
RUN mkdir -p /var/cache/coder/site/orig/bin \\
 && ln -s /opt/coder /var/cache/coder/site/orig/bin/coder-linux-amd64 \\
 && chown -R 1000:1000 /var/cache/coder \\
 && terraform version
ENV HOME=/home/coder \\
 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt \\
 TF_CLI_CONFIG_FILE=/usr/local/share/terraform/cli.tfrc \\
 CODER_CACHE_DIRECTORY=/var/cache/coder
USER 1000:1000
WORKDIR /home/coder
ENTRYPOINT ["/opt/coder", "server"]
EOF
}

# PostgreSQL from Debian's packages under the official postgres image's
# contract (scripts/standin/postgres-entrypoint.sh): PGDATA
# /var/lib/postgresql/data (a volume), the postgres user renumbered to the
# official image's 999:999, listen_addresses '*' in the sample initdb copies,
# the client tools of this release first on PATH (Debian's wrappers in
# /usr/bin would look for a cluster in /etc/postgresql, and there is none),
# STOPSIGNAL SIGINT (a fast shutdown) as the official image. Debian's postinst
# made a cluster `main`; it goes, and apt makes no other.
postgres_dockerfile() {
	cat <<EOF
FROM $1
LABEL org.opencontainers.image.title="PostgreSQL $2 (egoengine stand-in)" \\
 org.opencontainers.image.description="stand-in of the postgres image for egoengine's tests (scripts/standin-image.sh stack)" \\
 org.opencontainers.image.version="$2"
RUN set -e; \\
 if [ -d /etc/postgresql/$2/main ]; then pg_dropcluster $2 main; fi; \\
 sed -ri 's/^#?[[:space:]]*create_main_cluster[[:space:]]*=.*/create_main_cluster = false/' /etc/postgresql-common/createcluster.conf; \\
 old_uid=\$(id -u postgres); old_gid=\$(id -g postgres); \\
 if [ "\$old_uid:\$old_gid" != 999:999 ]; then \\
  groupmod -g 999 postgres && usermod -u 999 postgres; \\
  find / -xdev -uid "\$old_uid" -exec chown -h postgres '{}' +; \\
  find / -xdev -gid "\$old_gid" -exec chgrp -h postgres '{}' +; \\
 fi; \\
 sample=/usr/share/postgresql/$2/postgresql.conf.sample; \\
 sed -ri "s!^#?(listen_addresses)[[:space:]]*=[[:space:]]*[^[:space:]]+(.*)!\\\\1 = '*'\\\\2!" "\$sample"; \\
 grep -q "^listen_addresses = '\\*'" "\$sample"; \\
 mkdir -p /var/run/postgresql /var/lib/postgresql/data; \\
 chown postgres:postgres /var/run/postgresql /var/lib/postgresql/data; \\
 chmod 3777 /var/run/postgresql; chmod 700 /var/lib/postgresql/data
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV LANG=C.UTF-8 \\
 PGDATA=/var/lib/postgresql/data \\
 PATH=/usr/lib/postgresql/$2/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
VOLUME /var/lib/postgresql/data
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
STOPSIGNAL SIGINT
EXPOSE 5432
CMD ["postgres"]
EOF
}

# caddy_files DIR: the default site of the official image (files from
# /usr/share/caddy on port 80); compose.yaml mounts its own Caddyfile.
caddy_files() {
	cat >"$1/Caddyfile" <<'EOF'
# The stand-in's default configuration (scripts/standin-image.sh stack), as
# the official image's: the files of /usr/share/caddy on port 80. Mount your
# own at /etc/caddy/Caddyfile.
:80 {
	root * /usr/share/caddy
	file_server
}
EOF
	printf '<!DOCTYPE html>\n<title>Caddy works</title>\n<p>Caddy (egoengine stand-in) works.</p>\n' >"$1/index.html"
}

# Caddy as the official image lays it out: /usr/bin/caddy, the Caddyfile in
# /etc/caddy, XDG_CONFIG_HOME=/config and XDG_DATA_HOME=/data (volumes), root,
# WORKDIR /srv; wget for compose.yaml's healthcheck. The binary is the one
# given (scripts/test-compose.sh builds the pinned release).
caddy_dockerfile() {
	cat <<EOF
FROM $1
LABEL org.opencontainers.image.title="Caddy (egoengine stand-in)" \\
 org.opencontainers.image.description="stand-in of the caddy image for egoengine's tests (scripts/standin-image.sh stack)" \\
 org.opencontainers.image.version="v$2"
COPY caddy /usr/bin/caddy
COPY Caddyfile /etc/caddy/Caddyfile
COPY index.html /usr/share/caddy/index.html
RUN mkdir -p /config/caddy /data/caddy /srv && caddy version >/dev/null
ENV CADDY_VERSION=v$2 XDG_CONFIG_HOME=/config XDG_DATA_HOME=/data
VOLUME /config /data
EXPOSE 80 443 443/udp 2019
WORKDIR /srv
CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
EOF
}

case ${1:-} in
rootfs) rootfs ;;
build) shift; build "$@" ;;
stack) shift; stack "$@" ;;
*) die "usage: scripts/standin-image.sh rootfs | build TAG [--egoagent PATH] [--egoagent-op PATH] [--codex PATH] | stack --coder PATH --tofu PATH --tofu-config FILE --caddy PATH" ;;
esac
