# shellcheck shell=bash disable=SC2154 # repo, tmp and cache are test-nix.sh's
# Evaluating the flake offline, for scripts/test-nix.sh (which sources this
# file and sets repo, tmp and cache).
#
# flake.nix's outputs are evaluated with Debian's nix-instantiate against
#   - Home Manager at the revision flake.lock pins, and
#   - a stand-in for nixpkgs (nix/tests/eval/stand-in: the real nixpkgs lib,
#     every package a derivation that cannot build),
# both from the tarballs in ../shared/vendor (EGOENGINE_VENDOR overrides the
# folder). They are checked against SHA256SUMS and flake.lock and unpacked
# once into $cache/nix-eval/. `nix-instantiate --eval` computes store paths
# without writing anything; its store is one under $tmp, so that it needs no
# /nix (nor root).

nix_eval_vendor=${EGOENGINE_VENDOR:-$repo/../shared/vendor}
nix_eval_store="$tmp/nix-store"

# nix_eval_vendor_present: whether the tarballs are there at all.
nix_eval_vendor_present() {
	compgen -G "$nix_eval_vendor/home-manager-*.tar.gz" >/dev/null
}

# nix_eval_lock FIELD: a field of home-manager's locked entry in flake.lock.
nix_eval_lock() {
	jq -r --arg f "$1" '.nodes[.nodes.root.inputs["home-manager"]].locked[$f]' "${2:-$repo/flake.lock}"
}

# nix_eval_unpack TARBALL: prints the folder it is unpacked in, under the
# cache, keyed by the tarball's hash (unpacked once, renamed into place so
# that an interrupted unpack is never used).
nix_eval_unpack() {
	local tarball=$1 sum dir part
	sum=$(sha256sum "$tarball" | cut -c1-16)
	dir="$cache/nix-eval/$(basename "$tarball" .tar.gz)-$sum"
	if [[ ! -d $dir ]]; then
		part="$dir.part.$$"
		rm -rf "$part"
		mkdir -p "$part"
		tar -xzf "$tarball" -C "$part" || {
			rm -rf "$part"
			echo "cannot unpack $tarball" >&2
			return 1
		}
		# Another run may have unpacked it meanwhile: keep theirs.
		mv -T "$part" "$dir" 2>/dev/null || rm -rf "$part"
	fi
	echo "$dir"
}

# nix_eval_prepare [LOCK]: checks the tarballs against SHA256SUMS, picks the
# Home Manager that flake.lock pins, unpacks both and lays out a nixpkgs
# folder whose default.nix is the stand-in. Sets nix_eval_hm and
# nix_eval_nixpkgs.
nix_eval_prepare() {
	local lock=${1:-$repo/flake.lock} rev held tarballs hm_tar lib_tar dir entry
	(cd "$nix_eval_vendor" && sha256sum --check --quiet SHA256SUMS) || {
		echo "$nix_eval_vendor: a tarball does not match SHA256SUMS"
		return 1
	}
	rev=$(nix_eval_lock rev "$lock")
	hm_tar="$nix_eval_vendor/home-manager-$rev.tar.gz"
	if [[ ! -f $hm_tar ]]; then
		held=$(cd "$nix_eval_vendor" && ls -- home-manager-*.tar.gz)
		echo "flake.lock pins home-manager $rev, but $nix_eval_vendor holds only ${held//$'\n'/, }:"
		echo "add home-manager-$rev.tar.gz (git archive --prefix=home-manager/ $rev of nix-community/home-manager)"
		echo "and its line in SHA256SUMS, or move flake.lock back"
		return 1
	fi
	mapfile -t tarballs < <(compgen -G "$nix_eval_vendor/nixpkgs-lib-*.tar.gz")
	if ((${#tarballs[@]} != 1)); then
		echo "$nix_eval_vendor must hold exactly one nixpkgs-lib-*.tar.gz, found ${#tarballs[@]}"
		return 1
	fi
	lib_tar=${tarballs[0]}
	dir=$(nix_eval_unpack "$hm_tar") || return 1
	nix_eval_hm="$dir/home-manager"
	dir=$(nix_eval_unpack "$lib_tar") || return 1
	# nixpkgs as the flake imports it: the real lib/ and the few module
	# files Home Manager reads beside it, and the stand-in as default.nix.
	nix_eval_nixpkgs="$tmp/nixpkgs"
	mkdir -p "$nix_eval_nixpkgs"
	for entry in "$dir"/nixpkgs/*; do
		ln -sfn "$entry" "$nix_eval_nixpkgs/$(basename "$entry")"
	done
	printf 'args: import %s (args // {path = ./.;})\n' "$repo/nix/tests/eval/stand-in" >"$nix_eval_nixpkgs/default.nix"
}

# nix_eval_pins [LOCK]: the unpacked Home Manager is, byte for byte, what
# flake.lock pins: its NAR hash equals the lock's narHash.
nix_eval_pins() {
	local lock=${1:-$repo/flake.lock} want have rev
	want=$(nix_eval_lock narHash "$lock")
	rev=$(nix_eval_lock rev "$lock")
	have=$(nix hash path "$nix_eval_hm") || return 1
	if [[ $want != "$have" ]]; then
		echo "flake.lock pins home-manager $rev with narHash $want,"
		echo "but the vendored tree ($(basename "$(dirname "$nix_eval_hm")")) hashes to $have:"
		echo "refresh ../shared/vendor/home-manager-$rev.tar.gz and its SHA256SUMS line from that revision"
		return 1
	fi
	echo "home-manager ${rev:0:12} is flake.lock's narHash $have"
}

# nix_eval_flake SRC OUT ERR: evaluates the flake in folder SRC (the
# repository or a changed copy); the JSON result goes to OUT, Nix's messages
# to ERR. Fails when the evaluation fails, when it printed anything (Home
# Manager and lib print their warnings as traces) or when Home Manager's
# config.warnings is not empty.
nix_eval_flake() {
	local src=$1 out=$2 err=$3 name
	if ! nix-instantiate --store "$nix_eval_store" --eval --strict --json \
		--argstr src "$src" --argstr nixpkgs "$nix_eval_nixpkgs" --argstr homeManager "$nix_eval_hm" \
		"$repo/nix/tests/eval/outputs.nix" >"$out" 2>"$err.raw"; then
		grep -v build-users-group "$err.raw" >"$err"
		# A name the stand-in lacks reads like a typo; say what else it may be.
		name=$(sed -n "s/^error: undefined variable '\([^']*\)'.*/\1/p; s/^error: attribute '\([^']*\)' missing.*/\1/p" "$err" | head -n1)
		if [[ -n $name ]]; then
			printf '%s\n' "if nixpkgs has a package named $name, add it to nix/tests/eval/stand-in/packages.nix (a function: builders.nix); the stand-in holds only what is in use" >>"$err"
		fi
		return 1
	fi
	grep -v build-users-group "$err.raw" >"$err"
	# A clean evaluation prints nothing: Home Manager's and lib's warnings
	# come as "trace:" lines, and anything else Nix says is worth a look too.
	if [[ -s $err ]]; then
		echo "warnings (they fail the evaluation): the evaluation printed the lines above" >>"$err"
		return 1
	fi
	if [[ $(jq '.warnings | length' "$out") != 0 ]]; then
		jq -r '.warnings[] | "warning: " + .' "$out" >>"$err"
		return 1
	fi
}
