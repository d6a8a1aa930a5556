#!/usr/bin/env bash
# A Docker Engine of the test's own (docs/e2e.md, "The Docker harness").
#
#   scripts/docker-harness.sh start DIR    start containerd and dockerd with
#                                          every file in DIR (a new folder);
#                                          prints DOCKER_HOST=..., and the
#                                          bridge's name and address
#   scripts/docker-harness.sh stop DIR     remove every container and
#                                          network, stop both, unmount,
#                                          remove the bridges, the firewall
#                                          rules and DIR
#   scripts/docker-harness.sh restart DIR  stop dockerd (containers get their
#                                          stop grace) and start it again
#   scripts/docker-harness.sh run CMD...   start in a fresh folder, run CMD
#                                          with DOCKER_HOST set, stop, also
#                                          on failure or interrupt
#
# It never touches a Docker the machine already runs: its own containerd
# (socket, root and state in DIR), its own dockerd (data root, exec root,
# socket, pid file, a daemon.json of its own: /etc/docker is not read), its
# own bridge eeb<8 hex> (not docker0) on a 10.X.Y.0/24, in a 10.X.0.0/16 no
# address or route of this machine uses, from which the networks the engine
# creates (docker network create, Compose) take their /24s too.
# Nothing leaves the machine: dockerd runs with --iptables=false
# --ip-forward=false --ip-masq=false (no NAT, no forwarding turned on),
# containers get the bridge's own address as DNS server (nothing answers
# there), and when iptables exists, FORWARD rules drop every packet between
# the run's bridges (eeb<8 hex>*) or its 10.X.0.0/16 and anything else.
# Published ports go through docker-proxy (the userland proxy: no NAT rules
# without --iptables), on the bridge address unless the port names another.
# Containers reach this host on the bridge address, and each other.
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

# pick_subnet: a 10.X.Y.0/24 in a 10.X.0.0/16 that no address or route of
# this machine is in (the /16 is the run's: its networks come from it).
pick_subnet() { printf '10.%d.%d\n' "$(free_net16 200 50)" $((RANDOM % 250)); }

# firewall -I|-D BRIDGE [POOL]: the FORWARD rules that keep the run's
# traffic on this machine. BRIDGE+ is iptables' wildcard: the bridge and
# every bridge named after it (a Compose network's eeb<id>c). POOL, the
# run's 10.X.0.0/16, catches a network whose bridge has another name
# (br-<id>, Docker's default).
firewall() {
	command -v iptables >/dev/null || return 0
	local op=$1 rule
	local -a rules=("-i $2+ ! -o $2+" "-o $2+ ! -i $2+")
	[[ -z ${3:-} ]] || rules+=("-s $3 ! -d $3" "-d $3 ! -s $3")
	for rule in "${rules[@]}"; do
		# shellcheck disable=SC2086 # the rule is words
		iptables -w "$op" FORWARD $rule -j DROP 2>/dev/null || [[ $op == -D ]] || die "iptables $op FORWARD $rule failed"
	done
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
		--ip "$gw" --dns "$gw" --storage-driver overlay2 --log-level warn \
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
	local dir=$1 id br net gw pool i t0
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
	pool=${net%.*}.0.0/16
	# Recorded first, so that stop removes whatever of it exists.
	printf 'BRIDGE=%s\nGATEWAY=%s\nPOOL=%s\n' "$br" "$gw" "$pool" >"$dir/state"
	ip link add name "$br" type bridge
	ip addr add "$gw/24" dev "$br"
	ip link set "$br" up
	firewall -I "$br" "$pool"
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
	# New networks take /24s of the run's /16, not Docker's defaults
	# (172.17-31.x, 192.168.x), which a Docker of the machine or its LAN may
	# use; dockerd still skips a /24 some route covers.
	# A registry a test runs on the run's bridge (the envbuilder cache)
	# speaks plain HTTP: the engine may pull from and push to it there, and
	# only there.
	printf '{"default-address-pools": [{"base": "%s", "size": 24}], "insecure-registries": ["%s"]}\n' "$pool" "$pool" >"$dir/daemon.json"
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

# run_bridges BRIDGE POOL: the bridges of a run, by name (BRIDGE*) or by an
# address in POOL (10.X.0.0/16).
run_bridges() {
	local name net=${2%.0.0/16}
	while read -r name; do
		if [[ $name == "$1"* ]] || { [[ -n $2 ]] && ip -o -4 addr show dev "$name" | awk -v n="$net." 'index($4, n) == 1 {f = 1} END {exit !f}'; }; then
			printf '%s\n' "$name"
		fi
	done < <(ip -o link show type bridge | awk -F': ' '{print $2}')
}

stop() {
	local dir=$1 br="" pool="" p mnt shims=0 sock ids
	[[ $dir == /* ]] || die "DIR must be absolute"
	[[ -d $dir ]] || return 0
	sock=unix://$dir/docker.sock
	if [[ -S $dir/docker.sock ]] && docker -H "$sock" version >/dev/null 2>&1; then
		mapfile -t ids < <(docker -H "$sock" ps -aq)
		if ((${#ids[@]})); then
			log "removing ${#ids[@]} container(s) left in the engine"
			docker -H "$sock" rm -f "${ids[@]}" >/dev/null 2>&1 || true
		fi
		# dockerd keeps a network's bridge when it stops: removed here,
		# whatever the bridge's name.
		mapfile -t ids < <(docker -H "$sock" network ls -q --filter type=custom)
		if ((${#ids[@]})); then
			docker -H "$sock" network rm "${ids[@]}" >/dev/null 2>&1 || true
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
	# A shim's children (a container's first process: with it, its PID
	# namespace) go first: a container whose shim is killed runs on, orphaned
	# (found with dockerd killed before stop).
	while read -r p; do
		log "killing a leftover shim $p and its container: $(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | cut -c1-100)"
		mapfile -t ids < <(ps -o pid= --ppid "$p")
		kill -KILL "${ids[@]}" "$p" 2>/dev/null || true
		for p in "${ids[@]}"; do wait_gone "$p" 5 || log "container process $p did not end"; done
		shims=1
	done < <(grep -lF -f <(printf '%s\n' "$dir/x/containerd.sock") /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3)
	# Mounts below DIR (overlay layers, shm, network namespaces), deepest first.
	while read -r mnt; do
		umount -l "$mnt" 2>/dev/null || true
	done < <(awk -v d="$dir/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r)
	if [[ -f $dir/state ]]; then
		br=$(sed -n 's/^BRIDGE=//p' "$dir/state")
		pool=$(sed -n 's/^POOL=//p' "$dir/state")
	fi
	if [[ -n $br ]]; then
		firewall -D "$br" "$pool"
		# The run's bridges: its own, those named after it, and (the engine
		# gone before its networks) any bridge with an address in its /16.
		while read -r p; do
			ip link del "$p" 2>/dev/null || true
		done < <(run_bridges "$br" "$pool")
	fi
	rm -rf "$dir"
	((shims == 0))
}


case ${1:-} in
start) (($# == 2)) || die "usage: start DIR"; start "$2" ;;
restart) (($# == 2)) || die "usage: restart DIR"; restart "$2" ;;
stop) (($# == 2)) || die "usage: stop DIR"; stop "$2" ;;
run) shift; run_harness eedock "$@" ;;
*) die "usage: scripts/docker-harness.sh start DIR | restart DIR | stop DIR | run CMD..." ;;
esac
