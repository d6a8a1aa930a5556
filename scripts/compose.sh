#!/usr/bin/env bash
# Runs Docker Compose for the egoengine Coder stack in compose/, after checking
# compose/.env, so that a missing or half-filled .env stops here with a list of
# what to fix instead of half-way through `docker compose up`.
#
#   scripts/compose.sh up        start (or update) the stack and wait until healthy
#   scripts/compose.sh down      stop it; volumes (database, certificates) are kept
#   scripts/compose.sh ARGS...   any other docker compose command, e.g. `ps`, `logs -f coder`
#
# compose/compose.override.yaml, when it exists, is added after compose.yaml.
#
# Exit status 2 means the configuration needs fixing; otherwise it is
# docker compose's own.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir="$root/compose"
env_file="$dir/.env"

# Messages quote values from .env and the shell: control characters in them
# (an escape sequence, a carriage return) are shown as ? rather than sent to
# the terminal.
fail() {
	local m
	for m in "$@"; do printf 'compose: %s\n' "${m//[[:cntrl:]]/?}"; done >&2
	exit 2
}
warn() {
	local m="$*"
	printf 'compose: warning: %s\n' "${m//[[:cntrl:]]/?}" >&2
}

if (($# == 0)); then
	fail "usage: scripts/compose.sh up | down | <docker compose command> [args...]"
fi

if [[ ! -f $env_file ]]; then
	fail "$env_file not found; the stack takes its settings and secrets from it." \
		"Create it from the example, then fill in the required values:" \
		"  cp compose/.env.example compose/.env && chmod 600 compose/.env" \
		"  CODER_ACCESS_URL   https://egoengine.<your domain>" \
		"  POSTGRES_PASSWORD  openssl rand -hex 32" \
		"  DOCKER_GROUP_ID    stat -c %g /var/run/docker.sock (rootless Docker: its own socket)" \
		"docs/operations.md walks through the first start."
fi

# env_value KEY prints KEY's value from .env the way Compose reads simple
# lines: the last assignment wins, surrounding quotes go, and so does a
# trailing " # comment" on an unquoted value.
env_value() {
	local line value
	line=$(grep -E "^[[:space:]]*(export[[:space:]]+)?$1[[:space:]]*=" "$env_file" | tail -n 1) || true
	value=${line#*=}
	value=${value#"${value%%[![:space:]]*}"}
	if [[ $value =~ ^\"(.*)\"[[:space:]]*$ || $value =~ ^\'(.*)\'[[:space:]]*$ ]]; then
		value=${BASH_REMATCH[1]}
	else
		value=${value%%[[:space:]]#*}
		value=${value%"${value##*[![:space:]]}"}
	fi
	printf '%s' "$value"
}

problems=()
for key in CODER_ACCESS_URL POSTGRES_PASSWORD DOCKER_GROUP_ID; do
	[[ -n $(env_value "$key") ]] || problems+=("$key is empty or missing in $env_file")
done

# COMPOSE_PROFILES is a comma-separated list; "*" switches every profile on.
tls_profile=
[[ ,$(env_value COMPOSE_PROFILES), =~ ,[[:space:]]*(tls|\*)[[:space:]]*, ]] && tls_profile=1

access_url=$(env_value CODER_ACCESS_URL)
if [[ -n $access_url && ! $access_url =~ ^https://[A-Za-z0-9.-]+(:[0-9]+)?/?$ ]]; then
	problems+=("CODER_ACCESS_URL=$access_url: use https://egoengine.<your domain> (https, a host name, no path)")
elif [[ -n $tls_profile && $access_url =~ :([0-9]+)/?$ && ${BASH_REMATCH[1]} != 443 ]]; then
	# Caddy listens, inside its container, on its site address's port, and
	# only 443 is published: any other port would never be reached.
	problems+=("CODER_ACCESS_URL=$access_url: with COMPOSE_PROFILES=tls, Caddy listens on this URL's port inside its container, where only 443 is published; leave the port out and choose the host side with CADDY_HTTPS_PUBLISH")
fi
# The password goes into CODER_PG_CONNECTION_URL unescaped; characters with a
# meaning in URLs would break or silently change the connection.
password=$(env_value POSTGRES_PASSWORD)
if [[ -n $password && ! $password =~ ^[A-Za-z0-9._~-]+$ ]]; then
	problems+=("POSTGRES_PASSWORD holds characters that are not safe in a URL; use letters, digits and - . _ ~ (openssl rand -hex 32)")
fi
group_id=$(env_value DOCKER_GROUP_ID)
if [[ -n $group_id && ! $group_id =~ ^[0-9]+$ ]]; then
	problems+=("DOCKER_GROUP_ID=$group_id: a numeric group id is needed (stat -c %g /var/run/docker.sock)")
fi
# Compose would accept any tag and fail only at the pull, after the checks.
coder_version=$(env_value CODER_VERSION)
if [[ -n $coder_version && ! $coder_version =~ ^v2\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]]; then
	problems+=("CODER_VERSION=$coder_version: a Coder release tag is needed, such as v2.36.1 (https://github.com/coder/coder/releases); leave it empty for the pinned default")
fi
# An unknown value would make Caddy look for a file of that name and stop.
caddy_tls=$(env_value CADDY_TLS)
if [[ -n $caddy_tls && $caddy_tls != acme && $caddy_tls != internal ]]; then
	problems+=("CADDY_TLS=$caddy_tls: use acme (Let's Encrypt, the default) or internal (Caddy's own CA, whose root every client must trust)")
fi
# Another ACME directory: an https URL, for acme only; its root a file the
# container sees, in compose/caddy/ (mounted at /etc/caddy).
acme_ca=$(env_value CADDY_ACME_CA)
acme_ca_root=$(env_value CADDY_ACME_CA_ROOT)
if [[ -n $acme_ca ]]; then
	if [[ ${caddy_tls:-acme} != acme ]]; then
		problems+=("CADDY_ACME_CA=$acme_ca: an ACME directory applies to CADDY_TLS=acme only; empty it, or set CADDY_TLS=acme")
	elif [[ ! $acme_ca =~ ^https://[^[:space:]/]+(/[^[:space:]]*)?$ ]]; then
		problems+=("CADDY_ACME_CA=$acme_ca: the ACME directory's https:// URL is needed, such as https://acme-staging-v02.api.letsencrypt.org/directory")
	fi
fi
if [[ -n $acme_ca_root ]]; then
	if [[ -z $acme_ca ]]; then
		problems+=("CADDY_ACME_CA_ROOT=$acme_ca_root is set but CADDY_ACME_CA is empty: the root applies to another ACME directory only")
	elif [[ $acme_ca_root == /etc/caddy/* ]]; then
		root_file=$dir/caddy/${acme_ca_root#/etc/caddy/}
		if [[ ${acme_ca_root#/etc/caddy/} == */* || ! -f $root_file ]] || ! grep -q -- '-----BEGIN CERTIFICATE-----' "$root_file"; then
			problems+=("CADDY_ACME_CA_ROOT=$acme_ca_root: put the CA's root certificate (PEM) into $dir/caddy/ as ${acme_ca_root#/etc/caddy/}; that folder is Caddy's /etc/caddy")
		fi
	elif [[ $acme_ca_root != /* ]]; then
		problems+=("CADDY_ACME_CA_ROOT=$acme_ca_root: a path in Caddy's container is needed: /etc/caddy/<file> for a file in $dir/caddy/")
	fi
fi
for key in CADDY_HTTP_PUBLISH CADDY_HTTPS_PUBLISH; do
	publish=$(env_value "$key")
	[[ -n $publish ]] || continue
	if ! [[ $publish =~ ^(([0-9]{1,3}\.){3}[0-9]{1,3}:|\[[0-9A-Fa-f:.]+\]:)?([0-9]{1,5})$ ]] ||
		((10#${BASH_REMATCH[3]} < 1 || 10#${BASH_REMATCH[3]} > 65535)); then
		problems+=("$key=$publish: use [IP:]PORT, a port alone or one host address and a port, such as 192.168.1.10:443")
	fi
done
# The socket Coder drives workspaces through; the group check below uses it too.
socket=$(env_value DOCKER_SOCKET)
if [[ -n $socket ]]; then
	if [[ $socket != /* ]]; then
		problems+=("DOCKER_SOCKET=$socket: an absolute path is needed, written out (rootless Docker: the output of echo \$XDG_RUNTIME_DIR/docker.sock)")
	elif [[ ! -S $socket ]]; then
		problems+=("DOCKER_SOCKET=$socket is not a socket; is Docker running? Leave it empty for /var/run/docker.sock")
	fi
fi
socket=${socket:-/var/run/docker.sock}
if ((${#problems[@]})); then
	fail "${problems[@]}" "Edit $env_file (compose/.env.example explains each value)."
fi

if [[ -S $socket ]]; then
	socket_gid=$(stat -c %g "$socket")
	[[ $socket_gid == "$group_id" ]] ||
		warn "DOCKER_GROUP_ID=$group_id but $socket belongs to group $socket_gid; Coder will not be able to create workspaces"
fi
if [[ $(stat -c %a "$env_file") != [0-7]00 ]]; then
	warn "$env_file is readable by other users and holds secrets; run: chmod 600 $env_file"
fi

# The stack's files. compose.override.yaml is Compose's own convention for
# local changes, which naming the files explicitly turns off: added back here.
files=("$dir/compose.yaml")
if [[ -f $dir/compose.override.yaml ]]; then
	files+=("$dir/compose.override.yaml")
fi

# Compose lets the calling shell's environment override .env, silently: the
# names .env sets, and those the files read that .env leaves to their
# defaults (which the checks above never see).
while IFS= read -r key; do
	if [[ -n ${!key+set} ]]; then
		warn "$key is set in your shell and overrides compose/.env; unset it to use the file's value or default"
	fi
done < <({
	grep -oE '^[[:space:]]*(export[[:space:]]+)?[A-Za-z_][A-Za-z0-9_]*[[:space:]]*=' "$env_file" | sed -E 's/^[[:space:]]*(export[[:space:]]+)?//; s/[[:space:]]*=$//'
	grep -ohE '\$\{[A-Za-z_][A-Za-z0-9_]*' "${files[@]}" | sed 's/^..//'
} | sort -u)

if ! docker compose version >/dev/null 2>&1; then
	fail "Docker Compose v2 is not available (\`docker compose version\` failed)." \
		"Install Docker Engine with the compose plugin on this host: https://docs.docker.com/engine/install/"
fi

compose=(docker compose --project-directory "$dir" --env-file "$env_file")
for file in "${files[@]}"; do
	compose+=(--file "$file")
done
case $1 in
up)
	shift
	"${compose[@]}" up --detach --wait --wait-timeout 300 "$@"
	if (($# == 0)); then
		printf 'compose: Coder is up; open %s\n' "$access_url"
	fi
	;;
down)
	shift
	"${compose[@]}" down "$@"
	;;
*)
	"${compose[@]}" "$@"
	;;
esac
