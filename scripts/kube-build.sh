#!/usr/bin/env bash
# The Kubernetes the e2e runs (docs/e2e.md, "The Kubernetes harness"), built
# once from the Go module proxy into ~/.cache/egoengine/kubernetes-<version>/:
#
#   scripts/kube-build.sh       build what is missing; prints the folder
#
# That folder then holds kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, kube-proxy, kubectl and etcd (one `go build` of
# the kubernetes module: they share most of their 2,900 packages, so one
# invocation compiles each once), pause (the pod sandbox, compiled from the
# module's own pause.c), and cni/ (Debian's containernetworking-plugins) and
# registry/ (Debian's docker-registry), both unpacked without installing,
# and kube-router/ (NetworkPolicies; go install, about 4 minutes).
# ../shared/notes/kubernetes.md has why each step is as it is.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The release the harness runs, and the published staging modules of it
# (k8s.io/api v0.37.2 and so on) that replace the module's ./staging paths,
# which its zip does not hold.
KUBE_VERSION=v1.37.2
KUBE_STAGING=v0.37.2
# The NetworkPolicy enforcer: kube-router's firewall alone (no routing, no
# service proxy), which the proxy serves and `go install` builds as it is.
KUBE_ROUTER_VERSION=v2.1.0

out=$cache/kubernetes-$KUBE_VERSION

# writable_source: a copy of the kubernetes module that builds: no vendor/
# (an OWNERS file only, which makes go complain of inconsistent vendoring),
# no go.work, each ./staging replace pointed at the published module, the
# two sample modules nobody imports and the proxy does not serve dropped,
# and etcd as one more main package (the module graph holds etcd's server,
# whose own module cannot be go-installed for its replace directives).
writable_source() {
	local src=$cache/kubernetes-src-$KUBE_VERSION dir
	if [[ ! -f $src/.ready ]]; then
		dir=$(go_module_dir "k8s.io/kubernetes@$KUBE_VERSION")
		rm -rf "$src"
		cp -R "$dir" "$src"
		chmod -R u+w "$src"
		rm -rf "$src/vendor" "$src"/go.work*
		sed -i -E \
			-e '/k8s\.io\/sample-(cli-plugin|controller) => /d' \
			-e "s#^([[:space:]]*)(k8s\\.io/[a-z0-9-]+) => \\./staging/src/k8s\\.io/[a-z0-9-]+\$#\\1\\2 => \\2 $KUBE_STAGING#" \
			"$src/go.mod"
		! grep -q '=> ./staging' "$src/go.mod" || die "a ./staging replace is left in $src/go.mod"
		mkdir -p "$src/cmd/egoengine-etcd"
		cat >"$src/cmd/egoengine-etcd/main.go" <<'GO'
// Command egoengine-etcd is etcd's server, built from the version the
// kubernetes module's own dependency graph holds (scripts/kube-build.sh).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
		(cd "$src" && GOFLAGS=-mod=mod GOWORK=off go mod tidy) >&2 || die "go mod tidy failed in $src"
		touch "$src/.ready"
	fi
	printf '%s\n' "$src"
}

build_kubernetes() {
	local src tmp stamp
	[[ -x $out/bin/kubelet && -x $out/bin/etcd && $(cat "$out/bin/.version" 2>/dev/null) == "$KUBE_VERSION" ]] && return
	command -v go >/dev/null || die "go is not on PATH; install Go (scripts/deps.sh says which)"
	src=$(writable_source)
	log "building Kubernetes $KUBE_VERSION and etcd (once; 15 to 25 minutes on two cores)"
	# The servers report this version; without it they say v0.0.0-master,
	# which kubectl cannot parse and Helm's kubeVersion checks refuse.
	stamp="-X k8s.io/component-base/version.gitVersion=$KUBE_VERSION"
	stamp+=" -X k8s.io/component-base/version.gitMajor=$(cut -d. -f1 <<<"${KUBE_VERSION#v}")"
	stamp+=" -X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"$KUBE_VERSION")"
	stamp+=" -X k8s.io/component-base/version.gitTreeState=clean"
	tmp=$(mktemp -d "$cache/kubernetes-build.XXXXXX")
	if ! (cd "$src" && CGO_ENABLED=0 GOWORK=off go build -trimpath -ldflags "-s -w $stamp" -o "$tmp/" \
		./cmd/kube-apiserver ./cmd/kube-controller-manager ./cmd/kube-scheduler ./cmd/kubelet \
		./cmd/kube-proxy ./cmd/kubectl ./cmd/egoengine-etcd) >&2; then
		rm -rf "$tmp"
		die "the Kubernetes build failed"
	fi
	mv "$tmp/egoengine-etcd" "$tmp/etcd"
	printf '%s\n' "$KUBE_VERSION" >"$tmp/.version"
	rm -rf "${out:?}/bin"
	mkdir -p "$out"
	mv "$tmp" "$out/bin"
}

# build_pause: the sandbox every pod holds its namespaces with, from the
# module's build/pause/linux/pause.c (what registry.k8s.io/pause is built
# from), static so the image needs nothing else.
build_pause() {
	[[ -x $out/pause/pause ]] && return
	command -v cc >/dev/null || die "no C compiler for the pause binary: install gcc (scripts/deps.sh)"
	local dir
	dir=$(go_module_dir "k8s.io/kubernetes@$KUBE_VERSION")
	mkdir -p "$out/pause"
	cc -Os -static -DVERSION="$KUBE_VERSION" -o "$out/pause/pause.partial" "$dir/build/pause/linux/pause.c"
	mv "$out/pause/pause.partial" "$out/pause/pause"
}

# unpack_deb PACKAGE DEST: a Debian package's files under DEST, without
# installing it (no service starts, nothing lands in /usr).
unpack_deb() {
	local pkg=$1 dest=$2 tmp
	[[ -f $dest/.ready ]] && return
	tmp=$(mktemp -d "$cache/deb.XXXXXX")
	(cd "$tmp" && apt-get download -qq "$pkg" >&2) || { rm -rf "$tmp"; die "apt-get download $pkg failed (is Debian's archive reachable?)"; }
	rm -rf "$dest"
	dpkg -x "$tmp"/*.deb "$dest"
	rm -rf "$tmp"
	touch "$dest/.ready"
}

main() {
	hold_lock "kubernetes-$KUBE_VERSION"
	mkdir -p "$out"
	unpack_deb containernetworking-plugins "$out/cni"
	unpack_deb docker-registry "$out/registry"
	build_pause
	go_tool "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$KUBE_ROUTER_VERSION" "$out/kube-router-$KUBE_ROUTER_VERSION/kube-router" >/dev/null
	# The harness runs the one this names.
	ln -sfn "kube-router-$KUBE_ROUTER_VERSION/kube-router" "$out/kube-router"
	build_kubernetes
	printf '%s\n' "$out"
}

main "$@"
