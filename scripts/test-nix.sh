#!/usr/bin/env bash
# make test-nix: what can be checked about the flake, the image and CI
# without nixpkgs (which cannot be fetched here) and without Docker.
#
#   - every .nix file parses (nix-instantiate --parse, Debian's nix-bin)
#   - the image's egoagent config (nix/egoagent/settings.nix) equals
#     internal/image/testdata/image-config.toml, which egoagent's loader is
#     tested against
#   - go.mod's go line is no higher than the Go of the pinned nixpkgs
#     (nix/pins.nix), and pins.nix describes the nixpkgs that flake.lock pins
#   - the vendorHash equals the NAR hash of `go mod vendor` now
#   - all of the main module's Go code is inside the Nix build's source
#   - the Neovim configuration's Lua parses
#   - the git hooks the image installs work, in a real repository
#   - actionlint on .github/workflows, shellcheck on every shell script
#
# Ends with "N passed, N failed"; exits 1 if any check failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
repo=$PWD

ACTIONLINT_VERSION=v1.7.12
cache="${XDG_CACHE_HOME:-$HOME/.cache}/egoengine"
actionlint_bin="$cache/actionlint-$ACTIONLINT_VERSION/actionlint"

# Debian's nix-bin has no nixbld group; nothing here builds.
export NIX_CONFIG="build-users-group =
experimental-features = nix-command"

missing=()
for tool in nix-instantiate nix shellcheck jq luac5.4 git go; do
	command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
	echo "test-nix: missing ${missing[*]}; run scripts/deps.sh (as root) first" >&2
	exit 1
fi
if [[ ! -x $actionlint_bin ]]; then
	echo "test-nix: building actionlint $ACTIONLINT_VERSION into $(dirname "$actionlint_bin")" >&2
	mkdir -p "$(dirname "$actionlint_bin")"
	GOBIN="$(dirname "$actionlint_bin")" GOFLAGS='' go install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION" || {
		echo "test-nix: could not build actionlint" >&2
		exit 1
	}
fi

tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT

passed=0
failed=0
failures=()
# check NAME FUNCTION: runs FUNCTION, prints its output only when it fails.
check() {
	local name=$1 fn=$2 out
	if out=$("$fn" 2>&1); then
		passed=$((passed + 1))
		echo "ok    $name${out:+: ${out##*$'\n'}}"
	else
		failed=$((failed + 1))
		failures+=("$name")
		echo "FAIL  $name"
		printf '%s\n' "$out" | sed 's/^/      /'
	fi
}

# Files of the repository, tracked or not, without ignored ones: what a
# fresh clone of a commit of this tree would hold.
repo_files() {
	git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
		[[ -e $f ]] && printf '%s\0' "$f"
	done
}

nix_files_parse() {
	local f n=0 bad=0
	while IFS= read -r -d '' f; do
		[[ $f == *.nix ]] || continue
		n=$((n + 1))
		if ! nix-instantiate --parse "$f" >/dev/null 2>"$tmp/parse.err"; then
			bad=$((bad + 1))
			echo "$f:"
			grep -v "build-users-group" "$tmp/parse.err"
		fi
	done < <(repo_files)
	((n > 0)) || {
		echo "no .nix files found"
		return 1
	}
	((bad == 0)) || return 1
	echo "$n files parse"
}

image_config_matches() {
	# Nix's own TOML reader on the expected file, compared with the attrset
	# the image renders with pkgs.formats.toml.
	local got
	got=$(nix-instantiate --eval --strict -E "
		let
		  want = builtins.fromTOML (builtins.readFile $repo/internal/image/testdata/image-config.toml);
		  have = import $repo/nix/egoagent/settings.nix;
		in if want == have then \"same\"
		   else throw \"nix/egoagent/settings.nix: \${builtins.toJSON have} differs from internal/image/testdata/image-config.toml: \${builtins.toJSON want}\"
	" 2>&1 | grep -v build-users-group) || {
		echo "$got"
		return 1
	}
	[[ $got == '"same"' ]] || {
		echo "$got"
		return 1
	}
	echo "settings.nix equals the tested config"
}

go_line_fits_nixpkgs() {
	local grep_line nix_line pinned lock_rev pin_rev
	grep_line=$(awk '$1 == "go" { print $2; exit }' go.mod)
	nix_line=$(nix-instantiate --eval -E "(import $repo/nix/lib/gomod.nix).goVersion (builtins.readFile $repo/go.mod)" 2>/dev/null | tr -d '"')
	pinned=$(nix-instantiate --eval -E "(import $repo/nix/pins.nix).goVersion" 2>/dev/null | tr -d '"')
	pin_rev=$(nix-instantiate --eval -E "(import $repo/nix/pins.nix).nixpkgsRev" 2>/dev/null | tr -d '"')
	lock_rev=$(jq -r '.nodes[.nodes.root.inputs.nixpkgs].locked.rev' flake.lock)
	if [[ -z $grep_line || $grep_line != "$nix_line" ]]; then
		echo "go.mod's go line: awk read '$grep_line', nix/lib/gomod.nix read '$nix_line'; they must agree"
		return 1
	fi
	if [[ $lock_rev != "$pin_rev" ]]; then
		echo "flake.lock pins nixpkgs $lock_rev but nix/pins.nix describes $pin_rev:"
		echo "look up that nixpkgs' Go (pkgs.go.version) and update nix/pins.nix"
		return 1
	fi
	# sort -V puts the lower version first: the go line must not be above.
	if [[ $(printf '%s\n%s\n' "$grep_line" "$pinned" | sort -V | tail -n1) != "$pinned" && $grep_line != "$pinned" ]]; then
		echo "go.mod says go $grep_line, above the Go $pinned of the pinned nixpkgs $pin_rev (nix/pins.nix);"
		echo "buildGoModule runs with GOTOOLCHAIN=local, so the image would not build: lower the go line or update nixpkgs"
		return 1
	fi
	echo "go $grep_line <= Go $pinned of nixpkgs ${pin_rev:0:12} (nix/pins.nix)"
}

vendor_hash_current() {
	local want have
	want=$(scripts/vendor-hash.sh --print) || return 1
	have=$(tr -d '[:space:]' <nix/egoagent/vendor-hash.nix)
	if [[ $want != "$have" ]]; then
		echo "nix/egoagent/vendor-hash.nix holds $have but go mod vendor now hashes to $want"
		echo "go.mod or go.sum changed: run make vendor-hash and commit the result"
		return 1
	fi
	echo "$have"
}

go_code_in_nix_source() {
	# The Nix build sees go.mod, go.sum, cmd/, internal/ and bench/ only. Folders
	# with a go.mod of their own are other modules and do not count.
	local f d outside=()
	while IFS= read -r -d '' f; do
		[[ $f == *.go ]] || continue
		case $f in cmd/* | internal/* | bench/*) continue ;; esac
		d=$(dirname "$f")
		while [[ $d != . && ! -e $d/go.mod ]]; do d=$(dirname "$d"); done
		[[ $d == . ]] && outside+=("$f")
	done < <(repo_files)
	if ((${#outside[@]})); then
		echo "Go files of the main module outside cmd/, internal/ and bench/: ${outside[*]}"
		echo "add their folder to the fileset in nix/egoagent/package.nix and the cp in scripts/vendor-hash.sh"
		return 1
	fi
	echo "all under cmd/, internal/ and bench/"
}

neovim_lua_parses() {
	local f n=0 bad=0
	while IFS= read -r -d '' f; do
		n=$((n + 1))
		luac5.4 -p "$f" || bad=$((bad + 1))
	done < <(find nix/home/nvim -name '*.lua' -print0)
	((n > 0 && bad == 0)) || return 1
	echo "$n files"
}

git_hooks_work() {
	# A real repository using the hooks the image installs (core.hooksPath,
	# as Home Manager's programs.git.hooks sets it).
	local hooks="$tmp/hooks" r="$tmp/repo"
	mkdir -p "$hooks" "$r"
	cp nix/home/git-hooks/pre-commit "$hooks/pre-commit"
	cp nix/home/git-hooks/run-local "$hooks/commit-msg"
	export GIT_AUTHOR_NAME=test GIT_AUTHOR_EMAIL=test@example.com GIT_COMMITTER_NAME=test GIT_COMMITTER_EMAIL=test@example.com
	git -C "$r" init -q
	git -C "$r" config core.hooksPath "$hooks"
	# The repository's own hooks must still run.
	printf '#!/bin/sh\necho local >>"%s"\n' "$tmp/local-pre-commit" >"$r/.git/hooks/pre-commit"
	printf '#!/bin/sh\necho local >>"%s"\n' "$tmp/local-commit-msg" >"$r/.git/hooks/commit-msg"
	chmod +x "$r/.git/hooks/pre-commit" "$r/.git/hooks/commit-msg"

	echo hello >"$r/readme"
	git -C "$r" add readme
	git -C "$r" commit -q -m "a plain file" || {
		echo "a plain commit was refused"
		return 1
	}
	[[ -s $tmp/local-pre-commit && -s $tmp/local-commit-msg ]] || {
		echo "the repository's own pre-commit or commit-msg hook did not run"
		return 1
	}

	mkdir -p "$r/.codex"
	printf '{"tokens": {"refresh_token": "rt_x"}}\n' >"$r/.codex/auth.json"
	git -C "$r" add .codex/auth.json
	if git -C "$r" commit -q -m "credentials" 2>"$tmp/hook.err"; then
		echo "a Codex auth.json was committed"
		return 1
	fi
	grep -q "Codex auth.json" "$tmp/hook.err" || {
		echo "refusal does not name the problem:"
		cat "$tmp/hook.err"
		return 1
	}
	git -C "$r" rm -q --cached .codex/auth.json

	{
		echo "-----BEGIN OPENSSH PRIVATE KEY-----"
		echo "b3BlbnNzaC1rZXktdjEAAAAA"
		echo "-----END OPENSSH PRIVATE KEY-----"
	} >"$r/id"
	git -C "$r" add id
	if git -C "$r" commit -q -m "key" 2>/dev/null; then
		echo "a private key was committed"
		return 1
	fi
	echo "plain commits pass, credentials are refused, local hooks still run"
}

workflows_lint() {
	local files=()
	mapfile -t files < <(find .github/workflows -name '*.yml' -o -name '*.yaml' | sort)
	((${#files[@]})) || {
		echo "no workflows in .github/workflows"
		return 1
	}
	# actionlint also runs shellcheck on each run: block.
	"$actionlint_bin" "${files[@]}" || return 1
	echo "${#files[@]} workflows"
}

shell_scripts_pass_shellcheck() {
	local f first n=0 bad=()
	while IFS= read -r -d '' f; do
		case $f in *.sh | *.bash) ;; *)
			[[ -f $f && ! -L $f ]] || continue
			IFS= read -r first <"$f" 2>/dev/null || continue
			[[ $first =~ ^#!.*(/|env\ )(ba|da|k)?sh([[:space:]]|$) ]] || continue
			;;
		esac
		n=$((n + 1))
		shellcheck -x "$f" >"$tmp/sc.out" 2>&1 || {
			bad+=("$f")
			cat "$tmp/sc.out"
		}
	done < <(repo_files)
	if ((${#bad[@]})); then
		echo "shellcheck failed for: ${bad[*]}"
		return 1
	fi
	echo "$n scripts"
}

check "every .nix file parses" nix_files_parse
check "image config (settings.nix) is the tested config" image_config_matches
check "go.mod go line <= pinned nixpkgs Go" go_line_fits_nixpkgs
check "vendorHash matches go mod vendor" vendor_hash_current
check "Go code is inside the Nix source" go_code_in_nix_source
check "Neovim Lua parses" neovim_lua_parses
check "git hooks" git_hooks_work
check "actionlint .github/workflows" workflows_lint
check "shellcheck every shell script" shell_scripts_pass_shellcheck

if ((failed)); then
	echo "test-nix: failed: ${failures[*]}"
fi
echo "test-nix: $passed passed, $failed failed"
((failed == 0))
