#!/usr/bin/env bash
# A Kubernetes of the test's own (docs/e2e.md, "The Kubernetes harness"), the
# sibling of scripts/docker-harness.sh, from the binaries scripts/kube-build.sh
# makes.
#
#   scripts/kube-harness.sh start DIR    start a one-node cluster with every
#                                        file in DIR (a new folder); prints
#                                        KUBECONFIG=... and the values below
#   scripts/kube-harness.sh load DIR TAR import an OCI or Docker image archive
#                                        into the node's containerd
#   scripts/kube-harness.sh stop DIR     stop it all, unmount, remove the
#                                        bridge, firewall rules and folders,
#                                        restore every kernel setting it
#                                        changed, and compare the host with
#                                        what start recorded: any difference
#                                        is printed and fails the stop
#   scripts/kube-harness.sh run CMD...   start in a fresh folder, run CMD
#                                        with the values in its environment,
#                                        stop, also on failure or interrupt
#
# The cluster: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# a kubelet on a containerd of its own (socket, root, state and network
# namespaces in DIR), kube-proxy (iptables) and a CNI bridge eek<8 hex> on a
# 10.X.Y.0/24 no address or route of this machine uses; services take
# 10.X.Y+1.0/24. Everything listens on the bridge's address or loopback,
# never on the machine's own interfaces: the API server advertises the
# bridge address, and Pods reach this host there (a Coder run by the test
# listens on it too). Nothing leaves the machine: the bridge plugin does no
# masquerading, and mangle-table FORWARD rules drop every packet between the
# pod network and anything else (mangle runs before kube-proxy's filter
# rules, which could otherwise accept it). Pods get the bridge address as
# their only DNS server, where nothing answers: no cluster DNS runs (the
# workspace reaches Coder by address; CoreDNS would add a build and an image
# for nothing the tests need).
#
# NetworkPolicies are enforced by kube-router (scripts/kube-build.sh), its
# firewall only, run on this host like the kubelet: the real enforcer many
# clusters run, where the CNI bridge plugin enforces nothing.
#
# Storage: a StorageClass egoengine-local (the default class; no
# provisioner, WaitForFirstConsumer) and a few local PersistentVolumes on
# folders in DIR, each bound to the first claim that fits, Retain-ed after.
# A stand-in for a dynamic provisioner, which would need an image of its
# own; docs/e2e.md says so.
#
# Host side effects, and how they are undone: the kubelet and kube-proxy set
# kernel settings (kernel.panic, vm.overcommit_memory, net.ipv4.ip_forward,
# route_localnet, conntrack limits, ...): start records every writable
# sysctl, stop writes back each that changed. kube-proxy's KUBE-* chains go
# with `kube-proxy --cleanup`; every other KUBE-* chain start did not find
# (the kubelet's, kube-router's) and kube-router's ipsets go after, and stop
# compares iptables-save, ip6tables-save and the ipsets with start's copy. The kubelet makes /var/lib/kubelet and other folders whatever its
# root dir says, and cgroups named kubepods: those that did not exist
# before go. Mounts below DIR and the kubelet's folders are unmounted.
#
# Needs root (scripts/e2e.sh runs it through sudo -n), Debian's containerd,
# runc, iptables, ipset, iproute2, openssl and apache2-utils (htpasswd).
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

node=egoengine-node
# The folders outside DIR that the kubelet, containerd or the CNI plugins
# may create whatever they are told; each that start did not find goes at
# stop.
host_dirs=(/var/lib/kubelet /var/lib/cni /var/log/pods /var/log/containers /run/netns /var/run/netns /etc/cni /opt/cni /etc/kubernetes)
# Sysctls that change on their own (counters, random values): never compared.
# Nor are the settings of interfaces that come and go with Pods and
# engines (veths, bridges): they go with their interface.
volatile_sysctls='^(kernel\.random\.|kernel\.ns_last_pid|kernel\.pty\.nr|fs\.(dentry-state|file-nr|inode-nr|inode-state|quota\.)|net\.netfilter\.nf_conntrack_count|kernel\.tainted|fs\.binfmt_misc\.|net\.ipv[46]\.(conf|neigh)\.(veth|eek|eeb|cni|br-|docker))'

need() {
	((EUID == 0)) || die "a Kubernetes node needs root"
	local c
	for c in containerd runc ctr ip iptables iptables-save ipset openssl htpasswd sysctl; do
		command -v "$c" >/dev/null || die "$c is missing: run scripts/deps.sh (Debian packages containerd, runc, iptables, ipset, iproute2, openssl, apache2-utils)"
	done
}

# free_port: a TCP port nothing on this machine listens on.
free_port() {
	local p i
	for ((i = 0; i < 100; i++)); do
		p=$((20000 + RANDOM % 30000))
		ss -Htln "sport = :$p" | grep -q . || { printf '%s\n' "$p"; return; }
	done
	die "no free port found"
}

# pick_net: a 10.X.Y.0/24 (pods) and 10.X.Y+1.0/24 (services) in a 10.X.0.0/16
# no address or route of this machine is in. Prints 10.X.Y.
pick_net() { printf '10.%d.%d\n' "$(free_net16 150 50)" $((2 * (RANDOM % 120))); }

# snapshot DIR NAME: what of the host this harness may change, in
# DIR/NAME.*: sysctls, iptables and ip6tables rules (without counters), the
# folders of host_dirs that exist, the kubepods cgroups, the ipsets.
snapshot() {
	local d=$1 n=$2 f
	sysctl -a 2>/dev/null | grep -vE "$volatile_sysctls" | sort >"$d/$n.sysctl" || true
	for f in iptables ip6tables; do
		rules "$f"
	done >"$d/$n.iptables"
	for f in "${host_dirs[@]}"; do [[ -e $f ]] && printf '%s\n' "$f"; done >"$d/$n.dirs"
	find /sys/fs/cgroup -maxdepth 3 -type d -name 'kubepods*' 2>/dev/null | sort >"$d/$n.cgroups" || true
	ipset list -n 2>/dev/null | sort >"$d/$n.ipsets" || true
}

# rules TOOL: every rule of TOOL's (iptables or ip6tables) four tables,
# without counters, as "TOOL TABLE RULE" lines.
rules() {
	local t
	command -v "$1-save" >/dev/null || return 0
	for t in filter nat mangle raw; do
		"$1-save" -t "$t" 2>/dev/null | sed -E 's/ \[[0-9]+:[0-9]+\]//; /^(#|\*|COMMIT)/d' | sed "s/^/$1 $t /"
	done
}

# drop_chains BEFORE: removes every chain that is not in BEFORE (a
# snapshot's rules) and whose name begins KUBE-, in both families: the
# rules that jump to it, then the chain. The kubelet makes such chains
# (KUBE-FIREWALL, KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT) that no cleanup
# of Kubernetes' own removes; kube-proxy --cleanup misses some too.
drop_chains() {
	local before=$1 tool table chain rule t tb
	local -a new=()
	mapfile -t new < <(for tool in iptables ip6tables; do rules "$tool"; done | grep -E '^[a-z0-9]+ [a-z]+ :KUBE-' | grep -vxF -f "$before" | awk '{print $1, $2, substr($3, 2)}')
	((${#new[@]})) || return 0
	# The jumps first, deleted through *-restore, which reads a rule's
	# quoting (kube-router's comments have spaces) as *-save wrote it.
	for tool in iptables ip6tables; do
		for table in filter nat mangle raw; do
			local -a targets=()
			for rule in "${new[@]}"; do
				read -r t tb chain <<<"$rule"
				[[ $t == "$tool" && $tb == "$table" ]] && targets+=("-j $chain")
			done
			((${#targets[@]})) || continue
			{
				printf '*%s\n' "$table"
				"$tool-save" -t "$table" | grep -E '^-A ' | grep -F -f <(printf '%s\n' "${targets[@]}") | sed 's/^-A /-D /'
				printf 'COMMIT\n'
			} | "$tool-restore" -w --noflush || log "could not remove the $tool rules that jump to the chains of table $table"
		done
	done
	for rule in "${new[@]}"; do
		read -r tool table chain <<<"$rule"
		"$tool" -w -t "$table" -F "$chain" 2>/dev/null || true
	done
	for rule in "${new[@]}"; do
		read -r tool table chain <<<"$rule"
		"$tool" -w -t "$table" -X "$chain" 2>/dev/null || log "could not remove the $tool chain $chain of table $table"
	done
}

# firewall -I|-D POD_NET: keeps the pod network's traffic on this machine.
# To and from the host itself is INPUT and OUTPUT, untouched; only what
# would be forwarded elsewhere is dropped.
firewall() {
	local op=$1 net=$2 rule
	for rule in "-s $net ! -d $net" "-d $net ! -s $net"; do
		# shellcheck disable=SC2086 # the rule is words
		iptables -w -t mangle "$op" FORWARD $rule -j DROP 2>/dev/null || [[ $op == -D ]] || die "iptables -t mangle $op FORWARD $rule failed"
	done
}

# cert NAME CN [O] [SAN]: a key and a certificate signed by DIR/pki/ca.
cert() {
	local n=$1 cn=$2 o=${3:-} san=${4:-} subj
	subj="/CN=$cn"
	[[ -z $o ]] || subj="/O=$o$subj"
	openssl ecparam -name prime256v1 -genkey -noout -out "$pki/$n.key" 2>/dev/null
	openssl req -new -key "$pki/$n.key" -subj "$subj" -out "$pki/$n.csr" 2>/dev/null
	{
		echo "basicConstraints=CA:FALSE"
		echo "keyUsage=critical,digitalSignature,keyEncipherment"
		echo "extendedKeyUsage=serverAuth,clientAuth"
		[[ -z $san ]] || echo "subjectAltName=$san"
	} >"$pki/$n.ext"
	openssl x509 -req -in "$pki/$n.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 2 \
		-extfile "$pki/$n.ext" -out "$pki/$n.crt" 2>/dev/null
	rm -f "$pki/$n.csr" "$pki/$n.ext"
}

# kubeconfig NAME SERVER CERT: a kubeconfig for one of DIR/pki's identities.
kubeconfig() {
	cat >"$dir/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: egoengine
  cluster:
    server: $2
    certificate-authority: $pki/ca.crt
users:
- name: $3
  user:
    client-certificate: $pki/$3.crt
    client-key: $pki/$3.key
contexts:
- name: egoengine
  context: {cluster: egoengine, user: $3}
current-context: egoengine
EOF
}

# daemon NAME CMD...: starts CMD in a session of its own with a clean
# environment, its output in DIR/log/NAME.log, its pid in DIR/pid/NAME.
daemon() {
	local n=$1
	shift
	env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root setsid "$@" </dev/null >"$dir/log/$n.log" 2>&1 &
	echo $! >"$dir/pid/$n"
}

# wait_for NAME SECONDS CMD...: until CMD succeeds; dies with NAME's log.
wait_for() {
	local n=$1 s=$2 i
	shift 2
	for ((i = 0; i < s * 5; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		kill -0 "$(cat "$dir/pid/$n")" 2>/dev/null || die "$n exited: $(tail -n 5 "$dir/log/$n.log")"
		sleep 0.2
	done
	die "$n was not ready within ${s}s: $(tail -n 5 "$dir/log/$n.log")"
}

start() {
	dir=$1
	need
	[[ $dir == /* ]] || die "DIR must be absolute"
	[[ ! -e $dir || -z $(ls -A "$dir") ]] || die "$dir is not empty"
	local bin t0 id br net gw svc api_port etcd_port peer_port kubelet_port reg_port cni i
	bin=$("$root/scripts/kube-build.sh")/bin
	cni=$(dirname "$bin")/cni/usr/lib/cni
	t0=$(date +%s%N)
	mkdir -p "$dir"/{pki,log,pid,x,etcd,cni,ipam,kubelet,pv,registry/data,before}
	chmod 711 "$dir"
	pki=$dir/pki
	snapshot "$dir/before" host
	id=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
	br=eek$id
	net=$(pick_net)
	gw=$net.1
	svc=${net%.*}.$((${net##*.} + 1))
	api_port=$(free_port)
	etcd_port=$(free_port)
	peer_port=$(free_port)
	kubelet_port=$(free_port)
	reg_port=$(free_port)
	# Recorded first, so that stop removes whatever of it exists.
	printf 'BIN=%s\nBRIDGE=%s\nGATEWAY=%s\nPOD_NET=%s.0/24\nSERVICE_NET=%s.0/24\n' "$bin" "$br" "$gw" "$net" "$svc" >"$dir/state"
	ip link add name "$br" type bridge
	ip addr add "$gw/24" dev "$br"
	ip link set "$br" up
	firewall -I "$net.0/24"

	# One CA for everything; clients by certificate. The provisioner
	# identity has no rights until a test grants it some (RBAC).
	openssl ecparam -name prime256v1 -genkey -noout -out "$pki/ca.key" 2>/dev/null
	openssl req -x509 -new -key "$pki/ca.key" -subj /CN=egoengine-e2e-kubernetes-ca -days 2 -out "$pki/ca.crt" 2>/dev/null
	cert apiserver kube-apiserver "" "IP:$gw,IP:$svc.1,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
	cert admin egoengine-admin system:masters
	cert node "system:node:$node" system:nodes
	cert kubelet "$node" "" "IP:$gw,DNS:$node"
	cert provisioner egoengine-provisioner
	cert registry registry "" "IP:$gw"
	openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
	openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
	local server=https://$gw:$api_port
	kubeconfig admin "$server" admin
	kubeconfig node "$server" node
	kubeconfig provisioner "$server" provisioner

	daemon etcd "$bin/etcd" --name egoengine --data-dir "$dir/etcd" \
		--listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
		--listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
		--initial-cluster "egoengine=http://127.0.0.1:$peer_port" --listen-metrics-urls "" --log-level warn
	daemon kube-apiserver "$bin/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
		--bind-address "$gw" --secure-port "$api_port" --advertise-address "$gw" \
		--service-cluster-ip-range "$svc.0/24" --client-ca-file "$pki/ca.crt" \
		--tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
		--kubelet-client-certificate "$pki/admin.crt" --kubelet-client-key "$pki/admin.key" \
		--kubelet-certificate-authority "$pki/ca.crt" --kubelet-preferred-address-types InternalIP \
		--service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
		--service-account-issuer https://kubernetes.default.svc --authorization-mode Node,RBAC \
		--allow-privileged=false --profiling=false --v=1
	wait_for kube-apiserver 120 "$bin/kubectl" --kubeconfig "$dir/admin.kubeconfig" get --raw /readyz
	daemon kube-controller-manager "$bin/kube-controller-manager" --kubeconfig "$dir/admin.kubeconfig" \
		--authentication-kubeconfig "$dir/admin.kubeconfig" --authorization-kubeconfig "$dir/admin.kubeconfig" \
		--bind-address 127.0.0.1 --secure-port "$(free_port)" --leader-elect=false \
		--service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
		--use-service-account-credentials --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
		--service-cluster-ip-range "$svc.0/24" --profiling=false \
		--allocate-node-cidrs --cluster-cidr "$net.0/24" --node-cidr-mask-size 24
	daemon kube-scheduler "$bin/kube-scheduler" --kubeconfig "$dir/admin.kubeconfig" \
		--authentication-kubeconfig "$dir/admin.kubeconfig" --authorization-kubeconfig "$dir/admin.kubeconfig" \
		--bind-address 127.0.0.1 --secure-port "$(free_port)" --leader-elect=false --profiling=false

	# containerd of the node's own, with the CRI plugin this time.
	# restrict_oom_score_adj: root here may not lower oom_score_adj, and
	# without it every Pod fails to start (../shared/notes/kubernetes.md).
	cat >"$dir/cni/10-egoengine.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "egoengine",
  "plugins": [
    {"type": "bridge", "bridge": "$br", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$dir/ipam", "ranges": [[{"subnet": "$net.0/24", "gateway": "$gw"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "loopback"}
  ]
}
EOF
	mkdir -p "$dir/certs.d/$gw:$reg_port"
	printf 'server = "https://%s:%s"\n[host."https://%s:%s"]\n  ca = "%s"\n' "$gw" "$reg_port" "$gw" "$reg_port" "$pki/ca.crt" >"$dir/certs.d/$gw:$reg_port/hosts.toml"
	cat >"$dir/containerd.toml" <<EOF
version = 2
root = "$dir/containerd"
state = "$dir/x/c"
[grpc]
  address = "$dir/x/containerd.sock"
[ttrpc]
  address = "$dir/x/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "egoengine.test/pause:$(cat "$bin/.version")"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$cni"
    conf_dir = "$dir/cni"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$dir/certs.d"
EOF
	daemon containerd containerd -c "$dir/containerd.toml"
	wait_for containerd 30 test -S "$dir/x/containerd.sock"
	pause_image "$(dirname "$bin")/pause/pause" "$(cat "$bin/.version")"

	printf 'nameserver %s\n' "$gw" >"$dir/resolv.conf"
	cat >"$dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $gw
port: $kubelet_port
readOnlyPort: 0
healthzPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $pki/kubelet.crt
tlsPrivateKeyFile: $pki/kubelet.key
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$dir/x/containerd.sock
resolvConf: $dir/resolv.conf
clusterDomain: cluster.local
podLogsDir: $dir/pod-logs
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
EOF
	daemon kubelet "$bin/kubelet" --config "$dir/kubelet.yaml" --kubeconfig "$dir/node.kubeconfig" \
		--root-dir "$dir/kubelet" --hostname-override "$node" --node-ip "$gw" --v=1
	daemon kube-proxy "$bin/kube-proxy" --kubeconfig "$dir/admin.kubeconfig" --proxy-mode iptables \
		--hostname-override "$node" --bind-address "$gw" --cluster-cidr "$net.0/24" \
		--metrics-bind-address 127.0.0.1:0 --healthz-bind-address 127.0.0.1:0 --v=1

	# The registry workspaces pull from, with a password, as GHCR would
	# want: a pull Secret really matters.
	local password
	password=$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')
	printf '%s' "$password" >"$dir/registry/password"
	htpasswd -iBn egoengine <"$dir/registry/password" >"$dir/registry/htpasswd" 2>/dev/null
	cat >"$dir/registry/config.yml" <<EOF
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $dir/registry/data}
  delete: {enabled: true}
http:
  addr: $gw:$reg_port
  tls: {certificate: $pki/registry.crt, key: $pki/registry.key}
auth:
  htpasswd: {realm: egoengine-e2e, path: $dir/registry/htpasswd}
EOF
	daemon registry "$(dirname "$bin")/registry/usr/bin/docker-registry" serve "$dir/registry/config.yml"
	# The password reaches curl in a file, never in its arguments.
	(umask 077 && printf 'user = "egoengine:%s"\n' "$password" >"$dir/registry/curlrc")
	wait_for registry 30 curl -fsS --cacert "$pki/ca.crt" -o /dev/null -K "$dir/registry/curlrc" "https://$gw:$reg_port/v2/"

	wait_for kubelet 120 "$bin/kubectl" --kubeconfig "$dir/admin.kubeconfig" wait --for=condition=Ready "node/$node" --timeout=1s
	# NetworkPolicies enforced: kube-router's firewall only, on this host
	# like the kubelet (the pod bridge and routing stay the CNI plugin's).
	daemon kube-router "$(dirname "$bin")/kube-router" --kubeconfig "$dir/admin.kubeconfig" --hostname-override "$node" \
		--run-firewall=true --run-router=false --run-service-proxy=false --enable-cni=false --enable-pod-egress=false \
		--health-port 0 --service-cluster-ip-range "$svc.0/24" --v=1
	storage "$bin/kubectl" --kubeconfig "$dir/admin.kubeconfig"
	# The default ServiceAccount appears with the controller-manager.
	wait_for kube-controller-manager 60 "$bin/kubectl" --kubeconfig "$dir/admin.kubeconfig" get serviceaccount default
	# The socket and kubeconfigs for a caller that is not root.
	if [[ -n ${EE_KUBE_GROUP:-} ]]; then
		chgrp "$EE_KUBE_GROUP" "$dir" "$dir"/*.kubeconfig "$pki"/{admin,provisioner}.{crt,key} "$dir/registry/password"
		chmod g+r "$dir"/*.kubeconfig "$pki"/{admin,provisioner}.{crt,key} "$dir/registry/password"
		chmod 751 "$dir"
	fi
	log "cluster up in $((($(date +%s%N) - t0) / 1000000)) ms: $server, bridge $br $gw/24, services $svc.0/24, registry $gw:$reg_port"
	tee "$dir/env" <<EOF
KUBECONFIG=$dir/admin.kubeconfig
EE_KUBE_PROVISIONER_KUBECONFIG=$dir/provisioner.kubeconfig
EE_KUBE_BIN=$bin
EE_KUBE_GATEWAY=$gw
EE_KUBE_POD_NET=$net.0/24
EE_KUBE_CA=$pki/ca.crt
EE_KUBE_REGISTRY=$gw:$reg_port
EE_KUBE_REGISTRY_USER=egoengine
EE_KUBE_REGISTRY_PASSWORD_FILE=$dir/registry/password
EE_KUBE_STORAGE_CLASS=egoengine-local
EOF
}

# pause_image BINARY VERSION: the pod sandbox image, made here as an OCI
# archive of one layer holding the binary, and imported.
pause_image() {
	local b=$1 v=$2 o=$dir/pause-oci cfg man lsha csha msha
	mkdir -p "$o/blobs/sha256" "$o/rootfs"
	install -m 0755 "$b" "$o/rootfs/pause"
	tar -C "$o/rootfs" --owner=0 --group=0 --numeric-owner --mtime=@0 -cf "$o/layer.tar" pause
	lsha=$(sha256sum "$o/layer.tar" | cut -d' ' -f1)
	mv "$o/layer.tar" "$o/blobs/sha256/$lsha"
	cfg='{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/pause"]},"rootfs":{"type":"layers","diff_ids":["sha256:'$lsha'"]}}'
	csha=$(printf '%s' "$cfg" | sha256sum | cut -d' ' -f1)
	printf '%s' "$cfg" >"$o/blobs/sha256/$csha"
	man='{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:'$csha'","size":'${#cfg}'},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:'$lsha'","size":'$(stat -c %s "$o/blobs/sha256/$lsha")'}]}'
	msha=$(printf '%s' "$man" | sha256sum | cut -d' ' -f1)
	printf '%s' "$man" >"$o/blobs/sha256/$msha"
	printf '{"imageLayoutVersion":"1.0.0"}' >"$o/oci-layout"
	printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"annotations":{"org.opencontainers.image.ref.name":"egoengine.test/pause:%s"}}]}' \
		"$msha" "${#man}" "$v" >"$o/index.json"
	rm -rf "$o/rootfs"
	tar -C "$o" -cf "$dir/pause.tar" .
	load_into "$dir/pause.tar"
	rm -rf "$o" "$dir/pause.tar"
}

load_into() {
	ctr -a "$dir/x/containerd.sock" -n k8s.io images import --all-platforms "$1" >/dev/null || die "could not import $1 into the node's containerd"
}

# storage KUBECTL...: the default StorageClass and its local volumes.
storage() {
	local i
	{
		cat <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: egoengine-local
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
EOF
		for i in 1 2 3 4; do
			mkdir -p "$dir/pv/$i"
			cat <<EOF
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: egoengine-local-$i}
spec:
  capacity: {storage: 100Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: egoengine-local
  local: {path: $dir/pv/$i}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/hostname, operator: In, values: [$node]}
EOF
		done
	} | "$@" apply -f - >/dev/null
}

# compare DIR: the host now against start's record; prints each
# difference, fails if there is one.
compare() {
	local d=$1 f bad=0
	snapshot "$d/before" after
	for f in sysctl iptables ipsets dirs cgroups; do
		if ! diff -u "$d/before/host.$f" "$d/before/after.$f" >"$d/before/$f.diff"; then
			log "the host's $f differ from before the cluster:"
			sed -n '3,40p' "$d/before/$f.diff" >&2
			bad=1
		fi
	done
	((bad == 0))
}

stop() {
	dir=$1
	[[ $dir == /* ]] || die "DIR must be absolute"
	[[ -d $dir ]] || return 0
	local bin="" br="" net="" n p mnt left=0 line key value ids
	# From start's record only: a stop never builds (without a record,
	# start died before any daemon ran).
	if [[ -f $dir/state ]]; then
		bin=$(sed -n 's/^BIN=//p' "$dir/state")
		br=$(sed -n 's/^BRIDGE=//p' "$dir/state")
		net=$(sed -n 's/^POD_NET=//p' "$dir/state")
	fi
	# The kubelet first, so it restarts nothing; then every Pod's containers
	# and sandboxes through containerd, then the rest.
	for n in kubelet kube-scheduler kube-controller-manager registry; do
		stop_daemon "$n"
	done
	if [[ -S $dir/x/containerd.sock ]]; then
		for p in $(ctr -a "$dir/x/containerd.sock" -n k8s.io tasks ls -q 2>/dev/null); do
			ctr -a "$dir/x/containerd.sock" -n k8s.io tasks kill -s KILL "$p" >/dev/null 2>&1 || true
		done
	fi
	stop_daemon kube-proxy
	# Not `kube-router --cleanup-config`: it would also clear any IPVS
	# services of the host. Its chains and ipsets go below, with the rest.
	stop_daemon kube-router
	if [[ -x $bin/kube-proxy ]]; then "$bin/kube-proxy" --cleanup --proxy-mode iptables >/dev/null 2>&1 || true; fi
	for n in containerd kube-apiserver etcd; do
		stop_daemon "$n"
	done
	# Shims outlive containerd by design; none may outlive the cluster.
	while read -r p; do
		log "killing a leftover shim $p and its container"
		mapfile -t ids < <(ps -o pid= --ppid "$p")
		kill -KILL "${ids[@]}" "$p" 2>/dev/null || true
		wait_gone "$p" 5 || true
		left=1
	done < <(grep -lF -f <(printf '%s\n' "$dir/x/containerd.sock") /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3)
	# Mounts below DIR (volumes, overlays, network namespaces) and the
	# kubelet's default folders, deepest first.
	while read -r mnt; do
		umount -l "$mnt" 2>/dev/null || true
	done < <(awk -v d="$dir/" 'index($5, d) == 1 || index($5, "/var/lib/kubelet/") == 1 {print $5}' /proc/self/mountinfo | sort -r)
	[[ -z $net ]] || firewall -D "$net"
	[[ -z $br ]] || ip link del "$br" 2>/dev/null || true
	if [[ -d $dir/before ]]; then
		# Folders the cluster made outside DIR.
		for p in "${host_dirs[@]}"; do
			[[ -e $p ]] && ! grep -qxF "$p" "$dir/before/host.dirs" && rm -rf --one-file-system "$p"
		done
		# cgroups the kubelet made, deepest first (rmdir of a cgroup
		# removes its files).
		while read -r p; do
			grep -qxF "$p" "$dir/before/host.cgroups" || find "$p" -depth -type d -exec rmdir {} + 2>/dev/null || true
		done < <(find /sys/fs/cgroup -maxdepth 3 -type d -name 'kubepods*' 2>/dev/null)
		drop_chains "$dir/before/host.iptables"
		# ipsets kube-router made, now that no rule names them.
		while read -r p; do
			grep -qxF "$p" "$dir/before/host.ipsets" || ipset destroy "$p" 2>/dev/null || log "could not destroy the ipset $p"
		done < <(ipset list -n 2>/dev/null)
		# Kernel settings back as they were: each line of the record that
		# is not as it is now.
		sysctl -a 2>/dev/null | grep -vE "$volatile_sysctls" | sort >"$dir/before/now.sysctl" || true
		while IFS= read -r line; do
			key=${line%% = *}
			value=${line#* = }
			sysctl -q -w "$key=$value" >/dev/null 2>&1 || log "could not restore $key to $value"
		done < <(comm -23 "$dir/before/host.sysctl" "$dir/before/now.sysctl")
		compare "$dir" || left=1
	fi
	if ((left)); then
		log "the host is not as it was: kept $dir/before for a look"
		find "$dir" -mindepth 1 -maxdepth 1 ! -name before -exec rm -rf --one-file-system {} +
		return 1
	fi
	rm -rf --one-file-system "$dir"
}

stop_daemon() {
	local f=$dir/pid/$1 p
	[[ -f $f ]] || return 0
	p=$(cat "$f")
	kill -0 "$p" 2>/dev/null || return 0
	kill -TERM "$p" 2>/dev/null || true
	wait_gone "$p" 30 || { log "$1 ($p) did not stop within 30s: killing it"; kill -KILL "$p" 2>/dev/null || true; wait_gone "$p" 5 || true; }
}


case ${1:-} in
start) (($# == 2)) || die "usage: start DIR"; start "$2" ;;
load) (($# == 3)) || die "usage: load DIR TAR"; dir=$2; load_into "$3" ;;
stop) (($# == 2)) || die "usage: stop DIR"; stop "$2" ;;
run) shift; run_harness eekube "$@" ;;
*) die "usage: scripts/kube-harness.sh start DIR | load DIR TAR | stop DIR | run CMD..." ;;
esac
