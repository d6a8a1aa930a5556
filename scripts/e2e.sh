#!/usr/bin/env bash
# make e2e: egoengine end to end on a real Coder (docs/e2e.md).
#
#   scripts/e2e.sh               build or reuse the tools, then run the test
#   scripts/e2e.sh build-coder   only build (or find) Coder; prints its path
#   scripts/e2e.sh build-compose only build (or find) Docker Compose; prints
#                                its path
#   scripts/e2e.sh warm          start the slow builds (Coder, Compose,
#                                envbuilder, Kubernetes, the stand-in's root
#                                filesystem)
#                                in the background at low priority and
#                                return; make test runs it first, so that they
#                                overlap the suites before the e2e, which
#                                then waits for each through its lock. Log:
#                                ~/.cache/egoengine/warm.log
#
# Builds, each cached under ~/.cache/egoengine (EGOENGINE_CACHE) and keyed by
# version, so only the first run is slow:
#   coder-<version>/coder   Coder server and agent, from the Go module proxy
#                           (about 25 minutes on two cores, once)
#   OpenTofu + providers    scripts/tools.sh
#   bin/egoagent            scripts/build.sh (every run: it is what is tested)
#   e2e-optest/egoagent-op  the 1Password helper built with the test tag
#                           egoagent_optest (every run, from the Go build
#                           cache: a few seconds), which the
#                           workspace's egoagent runs against the test's
#                           local 1Password service on loopback
# then runs the Go test in e2e/ (a module of its own) against a PostgreSQL
# cluster and a Coder server of its own on free loopback ports. For the
# Docker tests it also starts a Docker Engine of the run's own
# (scripts/docker-harness.sh: own containerd, dockerd, bridges; nothing
# forwarded off the machine) and builds stand-in images in it
# (scripts/standin-image.sh, the Debian root filesystem cached once): the
# workspace image for TestDockerWorkspace and TestEnvbuilderWorkspace; for
# TestComposeStack the images of compose/compose.yaml (Coder, PostgreSQL,
# Caddy), with
#   compose-<version>/docker-compose  Docker Compose v2, from the Go module
#                           proxy (3 to 9 minutes, once), the engine's CLI
#                           plugin ($DOCKER_CONFIG/cli-plugins)
#   caddy-<version>/caddy   the Caddy compose.yaml pins (lib.sh caddy_binary)
#   pebble-<version>/pebble Let's Encrypt's ACME test server, the stack's
#                           ACME directory (go install, about 15 s, once)
# and for TestEnvbuilderWorkspace
#   envbuilder-<version>/envbuilder  envbuilder, from the Go module proxy
#                           (about 8 minutes, once), of which the test makes
#                           the builder image
# and for TestKubernetesWorkspace
#   kubernetes-<version>/   Kubernetes, etcd, kube-router and the rest
#                           (scripts/kube-build.sh, 25 minutes and more
#                           once), of which scripts/kube-harness.sh starts a
#                           one-node cluster with its own registry. That test
#                           runs last: the others run first, while the build
#                           (lowest priority) goes on beside them, and the
#                           cluster starts only when they are done.
# The engine, the cluster and all they hold go at the end, whatever
# happened; the cluster's stop fails the run if the host is not as it was.
#
# Every process the run starts carries EGOENGINE_E2E_RUN=<run id> in its
# environment; on exit, whatever happened, any such process is killed and
# the run fails if one was found.
#
# E2E_KEEP=1 keeps the run's folder; E2E_EGOAGENT=PATH tests that egoagent
# binary instead of building bin/egoagent (the helper is still built here);
# E2E_RUN=REGEXP runs only the matching tests (go test -run), and a run
# without TestDockerWorkspace, TestComposeStack, TestComposeOIDC,
# TestEnvbuilderWorkspace and TestKubernetesWorkspace starts no engine.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
# The Coder the owner runs: compose/compose.yaml's default pins the same
# release (a test checks). v2.36.1 is the newest release whose modules the
# Go module proxy serves in full; most between v2.27 and v2.38 are refused.
CODER_VERSION=v2.36.1
COMPOSE_VERSION=v2.40.3
# The release egoengine-envbuilder's envbuilder_image pins.
ENVBUILDER_VERSION=v1.3.0
# Let's Encrypt's ACME test server, the compose stack's ACME directory in
# TestComposeStack (a plain go install: about 15 s, once).
PEBBLE_VERSION=v2.10.3

# build_coder: prints the path of a coder binary of CODER_VERSION, building
# it from the Go module proxy the first time. Without the `embed` build tag:
# no web UI, the API and CLI are whole.
build_coder() {
	local out=$cache/coder-$CODER_VERSION/coder src dir
	hold_lock "coder-$CODER_VERSION"
	if [[ -x $out ]] && "$out" --version 2>/dev/null | grep -qF "${CODER_VERSION}"; then
		printf '%s\n' "$out"
		return
	fi
	command -v go >/dev/null || die "go is not on PATH; install Go (scripts/deps.sh says which)"
	mkdir -p "$cache"
	dir=$(go_module_dir "github.com/coder/coder/v2@$CODER_VERSION")
	# The module cache is read-only and `go install` refuses replace
	# directives: build in a writable copy, kept for the next build.
	src=$cache/coder-src-$CODER_VERSION
	if [[ ! -f $src/go.mod ]]; then
		rm -rf "$src.partial"
		cp -R "$dir" "$src.partial"
		chmod -R u+w "$src.partial"
		mv "$src.partial" "$src"
	fi
	log "building Coder $CODER_VERSION (slow the first time: about 25 minutes on two cores)"
	mkdir -p "$(dirname "$out")"
	# buildinfo.tag makes `coder --version` (and the agent's version check
	# against the server) say the release instead of v0.0.0-devel.
	(cd "$src" && go build -trimpath -ldflags="-s -X github.com/coder/coder/v2/buildinfo.tag=${CODER_VERSION#v}" -o "$out.partial" ./cmd/coder)
	mv -f "$out.partial" "$out"
	printf '%s\n' "$out"
}

# build_compose: prints the path of a Docker Compose v2 binary of
# COMPOSE_VERSION, built from the Go module proxy the first time (3 to 9
# minutes). TestComposeStack runs it as the harness engine's CLI plugin:
# Debian has only the old Python docker-compose, and nothing can be
# downloaded from Docker here.
build_compose() {
	local out=$cache/compose-$COMPOSE_VERSION/docker-compose
	hold_lock "compose-$COMPOSE_VERSION"
	if [[ -x $out ]] && "$out" version 2>/dev/null | grep -qF "$COMPOSE_VERSION"; then
		printf '%s\n' "$out"
		return
	fi
	log "building Docker Compose $COMPOSE_VERSION (slow the first time: 3 to 9 minutes on two cores)"
	# internal.Version is what `docker compose version` prints (the
	# module's Makefile sets it the same way).
	build_static "github.com/docker/compose/v2@$COMPOSE_VERSION" ./cmd "$out" \
		"-X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION"
	printf '%s\n' "$out"
}

# build_envbuilder: prints the path of an envbuilder binary of
# ENVBUILDER_VERSION, the one egoengine-envbuilder's default image pins,
# built from the Go module proxy the first time (about 8 minutes on two
# cores) as upstream's image has it: static, with the release in
# buildinfo. TestEnvbuilderWorkspace makes the builder image from it
# (ghcr.io/coder/envbuilder cannot be pulled here).
build_envbuilder() {
	local out=$cache/envbuilder-$ENVBUILDER_VERSION/envbuilder
	hold_lock "envbuilder-$ENVBUILDER_VERSION"
	if [[ -x $out && $(cat "$out.version" 2>/dev/null) == "$ENVBUILDER_VERSION" ]]; then
		printf '%s\n' "$out"
		return
	fi
	log "building envbuilder $ENVBUILDER_VERSION (slow the first time: about 8 minutes on two cores)"
	build_static "github.com/coder/envbuilder@$ENVBUILDER_VERSION" ./cmd/envbuilder "$out" \
		"-X github.com/coder/envbuilder/buildinfo.tag=${ENVBUILDER_VERSION#v}"
	printf '%s\n' "$ENVBUILDER_VERSION" >"$out.version"
	printf '%s\n' "$out"
}

# build_static MODULE@VERSION PACKAGE OUT LDFLAGS: a static, stripped build
# of PACKAGE of the module, renamed into place as OUT. Both modules built
# this way have exclude or replace directives in their go.mod (Compose
# excludes releases; envbuilder replaces kaniko and tailscale with Coder's
# forks and excludes a netlink release), which `go install` would ignore or
# refuse, and the module cache is read-only: so the build runs in a writable
# copy, not kept (the module cache has the source; only the binary is
# reused).
build_static() {
	local module=$1 pkg=$2 out=$3 ldflags=$4 src dir rc=0
	command -v go >/dev/null || die "go is not on PATH; install Go (scripts/deps.sh says which)"
	mkdir -p "$cache" "$(dirname "$out")"
	dir=$(go_module_dir "$module")
	src=$(mktemp -d "${TMPDIR:-/tmp}/egoengine-build-src.XXXXXX")
	cp -R "$dir/." "$src"
	chmod -R u+w "$src"
	(cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w $ldflags" -o "$out.partial.$$" "$pkg") >&2 || rc=$?
	rm -rf "$src"
	((rc == 0)) || { rm -f "$out.partial.$$"; die "could not build $pkg of $module"; }
	mv -f "$out.partial.$$" "$out"
}

# build_op_helper: prints the path of egoagent-op built with the tag
# egoagent_optest, whose one extra file sends the SDK's connections to the
# loopback service named by EGOAGENT_OPTEST_ADDR and EGOAGENT_OPTEST_CERT
# (docs/egoagent.md, "Why a helper"). It is never bin/egoagent-op, the
# shipped helper. Built at every run from the Go build cache (a few
# seconds: the link), and renamed into place, so that a run going on
# beside this one never copies a half-written helper.
build_op_helper() {
	local out=$cache/e2e-optest/egoagent-op version
	version=$(cd "$root" && git describe --always --dirty 2>/dev/null || echo dev)
	mkdir -p "$(dirname "$out")"
	(cd "$root" && CGO_ENABLED=0 go build -tags egoagent_optest -trimpath \
		-ldflags "-s -w -X main.version=$version" -o "$out.partial.$$" ./cmd/egoagent-op) >&2
	mv -f "$out.partial.$$" "$out"
	printf '%s\n' "$out"
}

# run_pids ID: the processes whose environment holds EGOENGINE_E2E_RUN=ID.
run_pids() {
	local p
	for p in /proc/[0-9]*; do
		if tr '\0' '\n' 2>/dev/null <"$p/environ" | grep -qxF "EGOENGINE_E2E_RUN=$1"; then
			printf '%s\n' "${p#/proc/}"
		fi
	done
}

# end_pids SIGNAL PID...: signals the processes, then waits up to 10 s for
# them to go; prints those still there.
end_pids() {
	local sig=$1 i p left
	shift
	kill "-$sig" "$@" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		left=()
		for p in "$@"; do
			[[ -r /proc/$p/cmdline && -n $(tr -d '\0' </proc/"$p"/cmdline 2>/dev/null) ]] && left+=("$p")
		done
		((${#left[@]})) || return 0
		sleep 0.1
	done
	printf '%s\n' "${left[@]}"
}

run_id=""
run_dir=""
test_pid=""
kube_pid=""
kube_out=""
docker_dir=""
kube_dir=""
as_root=()
# finish: the last word, whatever happened (a failure, Ctrl-C, a kill of the
# test): nothing of the run may survive it.
finish() {
	local rc=$? pids left
	trap - EXIT INT TERM
	# A Kubernetes build still running (the run failed before its test):
	# it stops; the next run builds again, from Go's cache.
	[[ -z $kube_pid ]] || kill -TERM -- "-$kube_pid" 2>/dev/null || true
	[[ -z $kube_out ]] || rm -f "$kube_out"
	# The test runs in a session of its own; if it is still there (this
	# script was interrupted), it goes first, and with it its cleanups' hope.
	if [[ -n $test_pid ]] && kill -0 "$test_pid" 2>/dev/null; then
		log "interrupted: stopping the test (session $test_pid)"
		kill -TERM -- "-$test_pid" 2>/dev/null || true
		sleep 1
		kill -KILL -- "-$test_pid" 2>/dev/null || true
		((rc != 0)) || rc=130
	fi
	if [[ -n $run_id ]]; then
		mapfile -t pids < <(run_pids "$run_id")
		if ((${#pids[@]})); then
			log "left behind by the run: $(ps -o pid=,args= -p "$(IFS=,; echo "${pids[*]}")" 2>/dev/null | cut -c1-120 | tr '\n' ';')"
			# TERM first, so PostgreSQL shuts down cleanly; then KILL.
			mapfile -t left < <(end_pids TERM "${pids[@]}")
			if ((${#left[@]})); then
				mapfile -t left < <(end_pids KILL "${left[@]}")
				((${#left[@]} == 0)) || log "processes survived SIGKILL: ${left[*]}"
			fi
			((rc != 0)) || rc=1
		fi
	fi
	# The cluster, before the engine: stop compares the host with what it
	# found, which the engine's own rules and bridge were part of.
	if [[ -n $kube_dir && -d $kube_dir ]]; then
		"${as_root[@]}" "$root/scripts/kube-harness.sh" stop "$kube_dir" || { log "the Kubernetes harness did not leave the host as it found it"; ((rc != 0)) || rc=1; E2E_KEEP=1; }
	fi
	# The engine, its containers, volumes, images, bridge and firewall rules.
	if [[ -n $docker_dir && -d $docker_dir ]]; then
		"${as_root[@]}" "$root/scripts/docker-harness.sh" stop "$docker_dir" || { log "the Docker harness left processes behind (now killed)"; ((rc != 0)) || rc=1; }
	fi
	if [[ -n $run_dir && -d $run_dir ]]; then
		if [[ ${E2E_KEEP:-} == 1 ]]; then
			log "kept $run_dir"
		else
			rm -rf "$run_dir"
		fi
	fi
	exit "$rc"
}

# warm: the slow builds of a cold machine, started in the background at the
# lowest priority, so that they use what the suites before the e2e leave of
# the two cores (those wait on downloads, npm, OpenTofu and subprocesses much
# of the time). Nothing here is needed for correctness: each build takes its
# lock, and the e2e, taking the same lock, waits for it or builds itself.
warm() {
	mkdir -p "$cache"
	log "starting the e2e's slow builds in the background (log: $cache/warm.log)"
	nice -n 19 "$0" warm-now >"$cache/warm.log" 2>&1 </dev/null &
}

warm_now() {
	local t0 as_root=()
	t0=$(date +%s)
	((EUID == 0)) || as_root=(sudo -n env "EGOENGINE_CACHE=$cache")
	# debootstrap and the module downloads wait on the network: beside the
	# Coder build, not after it.
	{ "${as_root[@]}" "$root/scripts/standin-image.sh" rootfs >/dev/null || log "the stand-in's root filesystem was not made; the e2e tries again"; } &
	build_compose >/dev/null &
	build_envbuilder >/dev/null &
	build_coder >/dev/null || log "Coder was not built; the e2e tries again"
	# After Coder, not beside it: the e2e needs Coder first and Kubernetes
	# last, so Coder gets the cores' share first.
	"$root/scripts/kube-build.sh" >/dev/null || log "Kubernetes was not built; the e2e tries again"
	wait || true
	log "warm: done after $(($(date +%s) - t0))s"
}

# run_tests TIMEOUT ARGS...: go test in e2e/ with the run's environment
# (main's: this runs within it) and ARGS (-run, -skip), in a session of its
# own (setsid execs in place: $! is its id), so that an interrupted run can
# end the test and all it started.
run_tests() {
	local timeout=$1 rc=0
	shift
	(
		cd "$root/e2e"
		exec env E2E_RUN_ID="$run_id" E2E_RUN_DIR="$run_dir" E2E_REPO="$root" E2E_CODER="$coder" \
			E2E_EGOAGENT="$egoagent" E2E_OP_HELPER="$ophelper" E2E_TOFU="$tofu" TF_CLI_CONFIG_FILE="$tfrc" \
			"${docker_env[@]}" setsid go test -count=1 -v -timeout "$timeout" "$@" ./...
	) &
	test_pid=$!
	wait "$test_pid" || rc=$?
	test_pid=""
	return "$rc"
}

main() {
	case ${1:-} in
	build-coder) build_coder; return ;;
	build-compose) build_compose; return ;;
	build-envbuilder) build_envbuilder; return ;;
	warm) warm; return ;;
	warm-now) warm_now; return ;;
	esac
	(($# == 0)) || die "unknown argument '$1'; usage: scripts/e2e.sh [build-coder | build-compose | build-envbuilder | warm]"

	local t0 coder tools tofu tfrc pgbin
	# Globals (finish ends them): the Kubernetes build, which may outlive
	# the tools' section.
	kube_pid="" kube_out=""
	t0=$(date +%s)
	command -v setsid >/dev/null || die "setsid is missing: install util-linux (scripts/deps.sh)"
	# As root, PostgreSQL runs as its own user, through runuser.
	if ((EUID == 0)); then
		command -v runuser >/dev/null || die "runuser is missing: install util-linux (scripts/deps.sh)"
	fi
	pgbin=$(find /usr/lib/postgresql -maxdepth 3 -path '*/bin/pg_ctl' 2>/dev/null | head -n1 || true)
	[[ -n ${E2E_PG_BINDIR:-$pgbin} ]] || die "no PostgreSQL server under /usr/lib/postgresql: install postgresql (scripts/deps.sh)"

	# Which Docker tests run decides what is built and whether an engine starts.
	local filter=${E2E_RUN:-.} want_workspace=0 want_stack=0 want_envbuilder=0 want_kube=0 compose="" caddy="" pebble="" envbuilder=""
	if [[ TestDockerWorkspace =~ $filter ]]; then want_workspace=1; fi
	if [[ TestComposeStack =~ $filter || TestComposeOIDC =~ $filter ]]; then want_stack=1; fi
	if [[ TestEnvbuilderWorkspace =~ $filter ]]; then want_envbuilder=1; fi
	# The Kubernetes test makes its images in the Docker Engine (the
	# stand-in, envbuilder's) and pushes them to the cluster's registry.
	if [[ TestKubernetesWorkspace =~ $filter ]]; then want_kube=1 want_envbuilder=1; fi
	# The engine and debootstrap need root: through sudo -n when this is not
	# root (CI runners), the engine's socket then given to this user's group.
	as_root=()
	((EUID == 0)) || as_root=(sudo -n env "EE_DOCKER_GROUP=$(id -g)" "EGOENGINE_CACHE=$cache")
	# On a cold machine the stand-ins' root filesystem (debootstrap, mostly
	# waiting on downloads) and Docker Compose (its modules' downloads, then
	# its build) are made beside Coder's build rather than after it, so that
	# their waits overlap it. Both are cached: later runs find them at once.
	local bg rootfs_pid="" compose_pid="" envbuilder_pid=""
	bg=$(mktemp -d "${TMPDIR:-/tmp}/egoengine-e2e-bg.XXXXXX")
	trap 'kill $rootfs_pid $compose_pid $envbuilder_pid 2>/dev/null; [[ -z $kube_pid ]] || kill -- "-$kube_pid" 2>/dev/null; rm -rf "$bg" "$kube_out"' EXIT
	if ((want_workspace || want_stack || want_envbuilder)); then
		# debootstrap chroots: made as root (once).
		"${as_root[@]}" "$root/scripts/standin-image.sh" rootfs >/dev/null &
		rootfs_pid=$!
	fi
	if ((want_stack)); then
		build_compose >"$bg/compose" &
		compose_pid=$!
	fi
	if ((want_envbuilder)); then
		build_envbuilder >"$bg/envbuilder" &
		envbuilder_pid=$!
	fi

	coder=$(build_coder)
	log "coder:    $coder ($("$coder" --version 2>/dev/null | head -n1))"
	# Kubernetes is waited for only when its test is next: the other tests
	# run first, and its build (the lowest priority, and begun only now that
	# Coder, which they need, is built) takes what they leave of the cores,
	# much of their time being waits.
	kube_out=$(mktemp "${TMPDIR:-/tmp}/egoengine-e2e-kube.XXXXXX")
	if ((want_kube)); then
		# A session of its own, so that finish can end the whole build.
		setsid nice -n 19 "$root/scripts/kube-build.sh" >"$kube_out" &
		kube_pid=$!
	fi
	tools=$("$root/scripts/tools.sh")
	tofu=$(sed -n 's/^TOFU=//p' <<<"$tools")
	tfrc=$(sed -n 's/^TF_CLI_CONFIG_FILE=//p' <<<"$tools")
	[[ -x $tofu && -f $tfrc ]] || die "scripts/tools.sh gave no OpenTofu or CLI config: $tools"
	log "tofu:     $tofu"
	local egoagent=${E2E_EGOAGENT:-}
	if [[ -z $egoagent ]]; then
		"$root/scripts/build.sh" >&2
		egoagent=$root/bin/egoagent
	fi
	[[ -x $egoagent ]] || die "E2E_EGOAGENT=$egoagent is not an executable file"
	log "egoagent: $egoagent ($("$egoagent" version 2>/dev/null || true))"
	local t2 ophelper
	t2=$(date +%s)
	ophelper=$(build_op_helper)
	log "helper:   $ophelper (tag egoagent_optest, $(($(date +%s) - t2))s)"
	if ((want_stack)); then
		t2=$(date +%s)
		wait "$compose_pid" || die "Docker Compose was not built (scripts/e2e.sh build-compose shows why)"
		compose=$(<"$bg/compose")
		log "compose:  $compose ($("$compose" version 2>/dev/null), waited $(($(date +%s) - t2))s)"
		t2=$(date +%s)
		caddy=$(caddy_binary)
		log "caddy:    $caddy ($(($(date +%s) - t2))s)"
		t2=$(date +%s)
		pebble=$(go_tool "github.com/letsencrypt/pebble/v2/cmd/pebble@$PEBBLE_VERSION" "$cache/pebble-$PEBBLE_VERSION/pebble")
		log "pebble:   $pebble ($(($(date +%s) - t2))s)"
	fi
	if ((want_envbuilder)); then
		t2=$(date +%s)
		wait "$envbuilder_pid" || die "envbuilder was not built (scripts/e2e.sh build-envbuilder shows why)"
		envbuilder=$(<"$bg/envbuilder")
		log "envbuilder: $envbuilder (waited $(($(date +%s) - t2))s)"
	fi
	if [[ -n $rootfs_pid ]]; then
		t2=$(date +%s)
		wait "$rootfs_pid" || die "no stand-in root filesystem (scripts/standin-image.sh rootfs)"
		log "rootfs:   ready (waited $(($(date +%s) - t2))s)"
	fi
	rootfs_pid="" compose_pid="" envbuilder_pid=""
	rm -rf "$bg"
	log "tools ready after $(($(date +%s) - t0))s"

	run_id=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
	trap finish EXIT INT TERM
	# Short, under /tmp whatever TMPDIR says: Unix socket paths below it (the
	# workspace's egoagent control socket) must stay under 108 bytes.
	run_dir=$(mktemp -d /tmp/ee2e.XXXXXX)
	# PostgreSQL runs as its own user when this runs as root; it needs to
	# pass through.
	chmod 755 "$run_dir"

	local docker_env=()
	if ((want_workspace || want_stack || want_envbuilder || want_kube)); then
		local t3 image stack stack_coder stack_postgres stack_caddy plugin henv DOCKER_HOST DOCKER_CONFIG EE_DOCKER_BRIDGE EE_DOCKER_GATEWAY
		t3=$(date +%s)
		docker_dir=$run_dir/d
		henv=$("${as_root[@]}" "$root/scripts/docker-harness.sh" start "$docker_dir") || die "the Docker harness did not start (scripts/docker-harness.sh; as root or with passwordless sudo)"
		DOCKER_HOST=$(sed -n 's/^DOCKER_HOST=//p' <<<"$henv")
		DOCKER_CONFIG=$(sed -n 's/^DOCKER_CONFIG=//p' <<<"$henv")
		EE_DOCKER_BRIDGE=$(sed -n 's/^EE_DOCKER_BRIDGE=//p' <<<"$henv")
		EE_DOCKER_GATEWAY=$(sed -n 's/^EE_DOCKER_GATEWAY=//p' <<<"$henv")
		log "docker:   engine up in $(($(date +%s) - t3))s ($DOCKER_HOST, bridge $EE_DOCKER_BRIDGE $EE_DOCKER_GATEWAY)"
		docker_env=(E2E_DOCKER_DIR="$docker_dir" E2E_DOCKER_HOST="$DOCKER_HOST" E2E_DOCKER_CONFIG="$DOCKER_CONFIG" E2E_DOCKER_BRIDGE="$EE_DOCKER_BRIDGE"
			E2E_DOCKER_GATEWAY="$EE_DOCKER_GATEWAY")
		t3=$(date +%s)
		# Both Docker tests start workspaces from the workspace stand-in.
		image=$(DOCKER_HOST=$DOCKER_HOST DOCKER_CONFIG=$DOCKER_CONFIG "$root/scripts/standin-image.sh" build "standin-${run_id:0:8}" \
			--egoagent "$egoagent" --egoagent-op "$ophelper")
		log "image:    $image built in $(($(date +%s) - t3))s"
		docker_env+=(E2E_DOCKER_IMAGE="$image")
		[[ -z $envbuilder ]] || docker_env+=(E2E_ENVBUILDER="$envbuilder" E2E_ENVBUILDER_VERSION="$ENVBUILDER_VERSION")
		if ((want_stack)); then
			# `docker compose` with the run's DOCKER_CONFIG finds the plugin
			# there. The harness made the folder as root: copied as root.
			plugin=$DOCKER_CONFIG/cli-plugins/docker-compose
			"${as_root[@]}" install -D -m 0755 "$compose" "$plugin" || die "could not install $compose as $plugin"
			t3=$(date +%s)
			stack=$(DOCKER_HOST=$DOCKER_HOST DOCKER_CONFIG=$DOCKER_CONFIG "$root/scripts/standin-image.sh" stack \
				--coder "$coder" --tofu "$tofu" --tofu-config "$tfrc" --caddy "$caddy") || die "the stack's stand-in images were not built (scripts/standin-image.sh stack)"
			stack_coder=$(sed -n 's/^coder=//p' <<<"$stack")
			stack_postgres=$(sed -n 's/^postgres=//p' <<<"$stack")
			stack_caddy=$(sed -n 's/^caddy=//p' <<<"$stack")
			[[ -n $stack_coder && -n $stack_postgres && -n $stack_caddy ]] || die "scripts/standin-image.sh stack did not name the three images: $stack"
			docker_env+=(E2E_COMPOSE="$plugin" E2E_PEBBLE="$pebble" E2E_STACK_CODER_IMAGE="$stack_coder"
				E2E_STACK_POSTGRES_IMAGE="$stack_postgres" E2E_STACK_CADDY_IMAGE="$stack_caddy")
			log "stack:    $(tr '\n' ' ' <<<"$stack")built in $(($(date +%s) - t3))s"
		fi
	fi

	local t1 rc=0
	t1=$(date +%s)
	if ((want_kube)); then
		run_tests 45m -run "$filter" -skip '^TestKubernetesWorkspace$' || rc=$?
		((rc == 0)) || die "the end-to-end test failed (exit $rc) after $(($(date +%s) - t1))s"
		local kenv t4
		t4=$(date +%s)
		wait "$kube_pid" || die "Kubernetes was not built (scripts/kube-build.sh shows why)"
		log "kubernetes: $(<"$kube_out") (waited $(($(date +%s) - t4))s after the other tests)"
		kube_pid=""
		t3=$(date +%s)
		kube_dir=$run_dir/kc
		kenv=$("${as_root[@]}" env "EE_KUBE_GROUP=$(id -g)" "$root/scripts/kube-harness.sh" start "$kube_dir") || die "the Kubernetes harness did not start (scripts/kube-harness.sh; as root or with passwordless sudo)"
		log "kubernetes: cluster up in $(($(date +%s) - t3))s"
		docker_env+=(E2E_KUBE_DIR="$kube_dir" E2E_KUBECONFIG="$(sed -n 's/^KUBECONFIG=//p' <<<"$kenv")")
		local v
		for v in PROVISIONER_KUBECONFIG BIN GATEWAY REGISTRY REGISTRY_USER REGISTRY_PASSWORD_FILE CA; do
			docker_env+=("E2E_KUBE_$v=$(sed -n "s/^EE_KUBE_$v=//p" <<<"$kenv")")
		done
		run_tests 20m -run '^TestKubernetesWorkspace$' || rc=$?
	else
		run_tests 45m -run "$filter" || rc=$?
	fi
	((rc == 0)) || die "the end-to-end test failed (exit $rc) after $(($(date +%s) - t1))s"
	log "passed in $(($(date +%s) - t0))s (the test itself: $(($(date +%s) - t1))s)"
}

main "$@"
