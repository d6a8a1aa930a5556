#!/usr/bin/env bash
# A Docker Engine of the test's own (docs/e2e.md, "The Docker harness").
#
#   scripts/docker-harness.sh start DIR    start containerd and dockerd with
#                                          every file in DIR (a new folder);
#                                          prints DOCKER_HOST=..., and the
#                                          bridge's name and address
#   scripts/docker-harness.sh stop DIR     remove every container, stop both,
#                                          unmount, remove the bridge, the
#                                          firewall rules and DIR
#   scripts/docker-harness.sh restart DIR  stop dockerd (containers get their
#                                          stop grace) and start it again
#   scripts/docker-harness.sh run CMD...   start in a fresh folder, run CMD
#                                          with DOCKER_HOST set, stop, also
#                                          on failure or interrupt
#
# It never touches a Docker the machine already runs: its own containerd
# (socket, root and state in DIR), its own dockerd (data root, exec root,
# socket, pid file, an empty daemon.json: /etc/docker is not read), its own
# bridge (not docker0), on a 10.x.y.0/24 no route of this machine uses.
# Nothing leaves the machine: dockerd runs with --iptables=false
# --ip-forward=false --ip-masq=false (no NAT, no forwarding turned on),
# containers get the bridge's own address as DNS server (nothing answers
# there), and when iptables exists, FORWARD rules drop every packet entering
# or leaving the bridge from or to another interface. Containers reach this
# host on the bridge address, and each other.
#
# Needs root (scripts/e2e.sh runs it through sudo -n when it is not root,
# with EE_DOCKER_GROUP=<its gid> for the socket), and Debian's docker.io and
# iptables (scripts/deps.sh).
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need() {
	((EUID == 0)) || die "a Docker Engine needs root"
	local c
	for c in dockerd containerd runc ip; do
		command -v "$c" >/dev/null || die "$c is missing: run scripts/deps.sh (Debian packages docker.io, iptables, iproute2)"
	done
}

# pick_subnet: a 10.X.Y.0/24 that no address or route of this machine is in.
pick_subnet() {
	local used x y i
	used=$(ip -4 addr show; ip -4 route show)
	for ((i = 0; i < 50; i++)); do
		x=$((200 + RANDOM % 50))
		y=$((RANDOM % 250))
		if ! grep -qE "(^|[^0-9])10\.$x\.$y\." <<<"$used" && ! grep -qE "(^|[^0-9])10\.$x\.0\.0/16|10\.0\.0\.0/8" <<<"$used"; then
			printf '10.%d.%d\n' "$x" "$y"
			return
		fi
	done
	die "no free 10.x.y.0/24 found"
}

# wait_gone PID SECONDS: waits for a process to end; 1 if it is still there.
wait_gone() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}

firewall() { # -I or -D, BRIDGE
	command -v iptables >/dev/null || return 0
	iptables -w "$1" FORWARD -i "$2" ! -o "$2" -j DROP 2>/dev/null || [[ $1 == -D ]] || die "iptables $1 FORWARD failed"
	iptables -w "$1" FORWARD -o "$2" ! -i "$2" -j DROP 2>/dev/null || [[ $1 == -D ]] || die "iptables $1 FORWARD failed"
}

# start_dockerd DIR BRIDGE GATEWAY: dockerd on the containerd of DIR, with
# the settings described at the top; returns once it answers.
start_dockerd() {
	local dir=$1 br=$2 gw=$3 i
	env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin setsid dockerd \
		--config-file "$dir/daemon.json" \
		--containerd "$dir/x/containerd.sock" --containerd-namespace egoengine-e2e \
		--data-root "$dir/data/docker" --exec-root "$dir/x/docker" \
		--pidfile "$dir/dockerd.pid" --host "unix://$dir/docker.sock" \
		--bridge "$br" --iptables=false --ip-forward=false --ip-masq=false --ipv6=false \
		--userland-proxy=false --dns "$gw" --storage-driver overlay2 --log-level warn \
		--group "$(cat "$dir/socket-group")" \
		</dev/null >>"$dir/dockerd.log" 2>&1 &
	echo $! >"$dir/dockerd.spid"
	for ((i = 0; i < 600; i++)); do
		if [[ -S $dir/docker.sock ]] && docker -H "unix://$dir/docker.sock" version >/dev/null 2>&1; then
			break
		fi
		kill -0 "$(cat "$dir/dockerd.spid")" 2>/dev/null || die "dockerd exited: $(tail -n 5 "$dir/dockerd.log")"
		sleep 0.1
	done
	docker -H "unix://$dir/docker.sock" version >/dev/null 2>&1 || die "dockerd did not answer within 60s: $(tail -n 5 "$dir/dockerd.log")"
}

# restart DIR: stops dockerd as a reboot or an upgrade would (SIGTERM: it
# stops the containers with their own grace) and starts it again; containers
# with a restart policy come back.
restart() {
	local dir=$1 p br gw
	[[ -f $dir/state && -f $dir/dockerd.spid ]] || die "$dir holds no engine of this harness"
	br=$(sed -n 's/^BRIDGE=//p' "$dir/state")
	gw=$(sed -n 's/^GATEWAY=//p' "$dir/state")
	p=$(cat "$dir/dockerd.spid")
	kill -TERM "$p" 2>/dev/null || true
	wait_gone "$p" 90 || die "dockerd did not stop within 90s"
	start_dockerd "$dir" "$br" "$gw"
	log "engine restarted: unix://$dir/docker.sock"
}

start() {
	local dir=$1 id br net gw i t0
	need
	[[ $dir == /* ]] || die "DIR must be absolute"
	[[ ! -e $dir || -z $(ls -A "$dir") ]] || die "$dir is not empty"
	t0=$(date +%s%N)
	mkdir -p "$dir/x" "$dir/data" "$dir/cli"
	chmod 711 "$dir"
	id=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
	br=eeb$id
	net=$(pick_subnet)
	gw=$net.1
	# Recorded first, so that stop removes whatever of it exists.
	printf 'BRIDGE=%s\nGATEWAY=%s\n' "$br" "$gw" >"$dir/state"
	ip link add name "$br" type bridge
	ip addr add "$gw/24" dev "$br"
	ip link set "$br" up
	firewall -I "$br"
	printf 'FIREWALL=%s\n' "$(command -v iptables >/dev/null && echo yes || echo no)" >>"$dir/state"

	cat >"$dir/containerd.toml" <<EOF
version = 2
root = "$dir/data/containerd"
state = "$dir/x/containerd"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$dir/x/containerd.sock"
[ttrpc]
  address = "$dir/x/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
EOF
	echo '{}' >"$dir/daemon.json"
	# The socket's group: root's, or the caller's when it ran this through
	# sudo (EE_DOCKER_GROUP, a gid), so that the tests and Coder reach the
	# engine without root.
	printf '%s\n' "${EE_DOCKER_GROUP:-0}" >"$dir/socket-group"
	# A clean environment: nothing of the caller's (proxies, a run marker)
	# reaches the engine or, through it, the containers.
	env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin setsid containerd -c "$dir/containerd.toml" </dev/null >"$dir/containerd.log" 2>&1 &
	echo $! >"$dir/containerd.pid"
	for ((i = 0; i < 300; i++)); do
		[[ -S $dir/x/containerd.sock ]] && break
		kill -0 "$(cat "$dir/containerd.pid")" 2>/dev/null || die "containerd exited: $(tail -n 5 "$dir/containerd.log")"
		sleep 0.1
	done
	[[ -S $dir/x/containerd.sock ]] || die "containerd did not open its socket within 30s"

	start_dockerd "$dir" "$br" "$gw"
	log "engine up in $((($(date +%s%N) - t0) / 1000000)) ms: unix://$dir/docker.sock, bridge $br $gw/24, firewall $(sed -n 's/^FIREWALL=//p' "$dir/state")"
	printf 'DOCKER_HOST=unix://%s/docker.sock\nDOCKER_CONFIG=%s/cli\nEE_DOCKER_BRIDGE=%s\nEE_DOCKER_GATEWAY=%s\n' "$dir" "$dir" "$br" "$gw" | tee "$dir/env"
}

stop() {
	local dir=$1 br="" p mnt shims=0 sock ids
	[[ $dir == /* ]] || die "DIR must be absolute"
	[[ -d $dir ]] || return 0
	sock=unix://$dir/docker.sock
	if [[ -S $dir/docker.sock ]] && docker -H "$sock" version >/dev/null 2>&1; then
		mapfile -t ids < <(docker -H "$sock" ps -aq)
		if ((${#ids[@]})); then
			log "removing ${#ids[@]} container(s) left in the engine"
			docker -H "$sock" rm -f "${ids[@]}" >/dev/null 2>&1 || true
		fi
	fi
	for p in dockerd.spid containerd.pid; do
		[[ -f $dir/$p ]] || continue
		p=$(cat "$dir/$p")
		kill -0 "$p" 2>/dev/null || continue
		kill -TERM "$p" 2>/dev/null || true
		wait_gone "$p" 30 || { log "pid $p did not stop within 30s: killing it"; kill -KILL "$p" 2>/dev/null || true; wait_gone "$p" 5 || true; }
	done
	# Shims of this containerd outlive it by design; none may outlive the run.
	# (The pattern comes through a file, so that grep does not find itself.)
	while read -r p; do
		log "killing a leftover shim $p: $(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | cut -c1-100)"
		kill -KILL "$p" 2>/dev/null || true
		shims=1
	done < <(grep -lF -f <(printf '%s\n' "$dir/x/containerd.sock") /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3)
	# Mounts below DIR (overlay layers, shm, network namespaces), deepest first.
	while read -r mnt; do
		umount -l "$mnt" 2>/dev/null || true
	done < <(awk -v d="$dir/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r)
	if [[ -f $dir/state ]]; then
		br=$(sed -n 's/^BRIDGE=//p' "$dir/state")
	fi
	if [[ -n $br ]]; then
		firewall -D "$br"
		ip link del "$br" 2>/dev/null || true
	fi
	rm -rf "$dir"
	((shims == 0))
}

run() {
	local dir rc=0
	(($#)) || die "usage: scripts/docker-harness.sh run CMD..."
	dir=$(mktemp -d /tmp/eedock.XXXXXX)
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

case ${1:-} in
start) (($# == 2)) || die "usage: start DIR"; start "$2" ;;
restart) (($# == 2)) || die "usage: restart DIR"; restart "$2" ;;
stop) (($# == 2)) || die "usage: stop DIR"; stop "$2" ;;
run) shift; run "$@" ;;
*) die "usage: scripts/docker-harness.sh start DIR | restart DIR | stop DIR | run CMD..." ;;
esac
