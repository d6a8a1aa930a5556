# shellcheck shell=bash
# What the scripts share, sourced by each: their way of talking, the one cache
# folder, and building pinned Go tools into it. Kept here so that a cache path
# or a message style cannot drift apart between scripts.
#
#   # shellcheck source=scripts/lib.sh
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# (scripts/compose.sh does not: compose/'s tests run a copy of it alone.)

# me names the script in every message: "tools: building ...". A script may
# set die_tag before sourcing: what marks a fatal message after the name.
me=$(basename "$0" .sh)
die_tag=${die_tag:-error}

log() { printf '%s: %s\n' "$me" "$*" >&2; }
die() { printf '%s: %s: %s\n' "$me" "$die_tag" "$*" >&2; exit 1; }

# The cache of builds and downloads, each in a folder named for its version so
# that a new pin never reuses an old build. EGOENGINE_CACHE moves it (e2e.sh
# passes it through sudo); otherwise it follows XDG_CACHE_HOME.
# shellcheck disable=SC2034 # used by the scripts that source this
cache=${EGOENGINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/egoengine}

# hold_lock NAME: waits for the lock $cache/NAME.lock, then holds it until the
# calling shell exits, so that two runs never build the same thing at once
# (make test's warm-up in the background and the e2e after it, or two
# checkouts): the second finds the first's build once it gets the lock.
hold_lock() {
	local fd
	mkdir -p "$cache"
	exec {fd}>>"$cache/$1.lock"
	if ! flock -n "$fd"; then
		log "waiting for another build of $1 to finish (make test's warm-up, or another run)"
		flock "$fd"
	fi
}

# install_binary BUILT DEST: moves a finished build into place in one step, so
# an interrupted run never leaves a half-written binary that looks cached.
install_binary() {
	mkdir -p "$(dirname "$2")"
	mv -f "$1" "$2.partial.$$"
	mv -f "$2.partial.$$" "$2"
}

# go_module_dir MODULE@VERSION: downloads a module from the Go module proxy
# (checksums verified against sum.golang.org as usual) and prints its
# read-only folder in the module cache. Run outside any module, so that the
# caller's go.mod and GOFLAGS play no part.
go_module_dir() {
	local dir
	dir=$(cd / && GOFLAGS='' GOWORK=off go mod download -json "$1" | sed -nE 's/^[[:space:]]*"Dir": "(.*)",?$/\1/p')
	[[ -n $dir && -d $dir ]] || die "go mod download $1 gave no folder (is the Go module proxy reachable?)"
	printf '%s\n' "$dir"
}

# go_tool PACKAGE@VERSION DEST: builds the command PACKAGE at that version from
# the Go module proxy (go install: checksums verified as usual) into DEST, the
# first time only; DEST's path carries the version. Prints DEST.
go_tool() {
	local pkg=$1 dest=$2 tmp
	local -a built
	if [[ ! -x $dest ]]; then
		command -v go >/dev/null || die "go is not on PATH; install Go (scripts/deps.sh says which)"
		log "building $pkg into $(dirname "$dest") (once)"
		tmp=$(mktemp -d "${TMPDIR:-/tmp}/egoengine-tool.XXXXXX")
		if ! (cd / && GOBIN=$tmp GOFLAGS='' GOWORK=off go install -trimpath -ldflags=-s "$pkg") >&2; then
			rm -rf "$tmp"
			die "could not build $pkg"
		fi
		built=("$tmp"/*)
		if ((${#built[@]} != 1)) || [[ ! -x ${built[0]} ]]; then
			rm -rf "$tmp"
			die "go install $pkg left no single binary"
		fi
		install_binary "${built[0]}" "$dest"
		rm -rf "$tmp"
	fi
	printf '%s\n' "$dest"
}

# caddy_binary: builds (once per release) and prints the Caddy of the release
# compose/compose.yaml pins (its `image: caddy:X` line), so that the stack's
# checks (test-compose.sh) and its stand-in image (e2e.sh) run the same one.
# (The checkout's root is found now: the caller may cd before calling.)
lib_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
caddy_binary() {
	local version
	version=$(sed -n 's/^[[:space:]]*image:[[:space:]]*caddy:\([0-9][0-9.]*\)[[:space:]]*$/\1/p' "$lib_root/compose/compose.yaml")
	[[ -n $version ]] || die "no pinned caddy image found in compose/compose.yaml"
	go_tool "github.com/caddyserver/caddy/v2/cmd/caddy@v${version}" "$cache/caddy-v${version}/caddy"
}

# wait_gone PID SECONDS: waits for a process to end; 1 if it is still there.
wait_gone() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		# A zombie (empty command line) has ended; only its reaping is left.
		[[ -n $(tr -d '\0' 2>/dev/null <"/proc/$1/cmdline") ]] || return 0
		sleep 0.1
	done
	return 1
}

# free_net16 FIRST COUNT: an X from FIRST to FIRST+COUNT-1 such that no
# address or route of this machine is in 10.X.0.0/16, where the test
# harnesses put their networks (the Docker one from 200, the Kubernetes one
# from 150, so that the two never meet).
free_net16() {
	local used x i
	used=$(ip -4 addr show; ip -4 route show)
	! grep -qE "(^|[^0-9])10\.0\.0\.0/8" <<<"$used" || die "a route of this machine covers all of 10.0.0.0/8: no private network is free for the test's own"
	for ((i = 0; i < 50; i++)); do
		x=$(($1 + RANDOM % $2))
		if ! grep -qE "(^|[^0-9])10\.$x\.[0-9]" <<<"$used"; then
			printf '%s\n' "$x"
			return
		fi
	done
	die "no free 10.x.0.0/16 found"
}

# run_harness PREFIX CMD...: a harness script's `run` (docker-harness.sh,
# kube-harness.sh; each defines start DIR and stop DIR): starts in a fresh
# folder /tmp/PREFIX.XXXXXX, runs CMD with start's output (NAME=value
# lines) in its environment, and stops, also on failure or interrupt.
run_harness() {
	local prefix=$1 dir rc=0
	shift
	(($#)) || die "usage: $0 run CMD..."
	dir=$(mktemp -d "/tmp/$prefix.XXXXXX")
	# shellcheck disable=SC2064 # the folder is fixed now
	trap "stop '$dir'" EXIT
	trap 'exit 130' INT TERM
	set -a
	# shellcheck disable=SC1090 # start's output: the variables above
	. <(start "$dir")
	set +a
	"$@" || rc=$?
	return "$rc"
}
