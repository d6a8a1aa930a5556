#!/usr/bin/env bash
# make test-nix: what can be checked about the flake, the image and CI
# without nixpkgs (which cannot be fetched here) and without Docker.
#
#   - every .nix file parses (nix-instantiate --parse, Debian's nix-bin)
#   - the flake's outputs evaluate to derivations, with the Home Manager
#     flake.lock pins and a stand-in for nixpkgs (scripts/nix-eval.sh), with
#     no warning; and the same evaluation fails, readably, on a misspelled
#     and on a removed Home Manager option, a wrong argument to image.nix, a
#     package the stand-in lacks, a warning and an unfree package
#   - the vendored Home Manager is the tree flake.lock's narHash names
#   - the image's egoagent config (nix/egoagent/settings.nix), rendered to
#     TOML, loads in egoagent, and its mirror of the egoengine vault's home/
#     Documents works (egoagent sync, a local folder standing in for 1Password)
#   - the workflows have the properties their first run needs
#     (scripts/test-workflows.py, which also proves each check can fail)
#   - go.mod's go line is no higher than the Go of the pinned nixpkgs
#     (nix/pins.nix), and pins.nix describes the nixpkgs that flake.lock pins
#   - the vendorHash equals the NAR hash of `go mod vendor` now
#   - all of the main module's Go code is inside the Nix build's source
#   - the Neovim configuration's Lua parses
#   - the git hooks the image installs work, in a real repository
#   - actionlint on .github/workflows, shellcheck on every shell script
#
# The evaluation needs the tarballs in ../shared/vendor (or $EGOENGINE_VENDOR).
# Without them its checks are skipped, loudly; with CI=true they fail, unless
# EGOENGINE_SKIP_NIX_EVAL says why this CI does not need them (GitHub's test
# workflow: its image workflow evaluates against the real nixpkgs).
#
# Ends with "N passed, N failed, N skipped"; exits 1 if any check failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
repo=$PWD
# shellcheck source=scripts/lib.sh
. "$repo/scripts/lib.sh"

ACTIONLINT_VERSION=v1.7.12
actionlint_bin="$cache/actionlint-$ACTIONLINT_VERSION/actionlint"

# Debian's nix-bin has no nixbld group; nothing here builds.
export NIX_CONFIG="build-users-group =
experimental-features = nix-command"

missing=()
for tool in nix-instantiate nix shellcheck jq luac5.4 git go sha256sum; do
	command -v "$tool" >/dev/null || missing+=("$tool")
done
# Debian's Python, with its YAML (workflows) and TOML (image config) modules.
/usr/bin/python3 -c 'import yaml, tomlkit' 2>/dev/null || missing+=("python3-yaml python3-tomlkit")
if ((${#missing[@]})); then
	die "missing ${missing[*]}; run scripts/deps.sh (as root) first"
fi
go_tool "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION" "$actionlint_bin" >/dev/null

tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT

passed=0
failed=0
skipped=0
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

# skip NAME WHY: a check that cannot run on this machine, said loudly.
skip() {
	skipped=$((skipped + 1))
	echo "SKIP  $1: $2"
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

# shellcheck source=scripts/nix-eval.sh
source "$repo/scripts/nix-eval.sh"

home_manager_is_pinned() {
	nix_eval_pins >/dev/null || {
		nix_eval_pins
		return 1
	}
	# A lock that names another tree must be refused, and say what to do.
	local lock="$tmp/moved.lock"
	jq '.nodes["home-manager"].locked.narHash = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="' flake.lock >"$lock"
	if nix_eval_pins "$lock" >"$tmp/moved.out"; then
		echo "a flake.lock with another narHash was accepted"
		return 1
	fi
	grep -q "refresh ../shared/vendor/home-manager-" "$tmp/moved.out" || {
		echo "a moved flake.lock is refused without saying what to refresh:"
		cat "$tmp/moved.out"
		return 1
	}
	# A lock moved to a revision no tarball holds: say which tarball to add.
	jq '.nodes["home-manager"].locked.rev = "ffffffffffffffffffffffffffffffffffffffff"' flake.lock >"$lock"
	if (nix_eval_prepare "$lock") >"$tmp/moved.out" 2>&1; then
		echo "a flake.lock pinning a revision without a tarball was accepted"
		return 1
	fi
	grep -q "add home-manager-ffffffffffffffffffffffffffffffffffffffff.tar.gz" "$tmp/moved.out" || {
		echo "a flake.lock pinning a revision without a tarball is refused without saying what to add:"
		cat "$tmp/moved.out"
		return 1
	}
	nix_eval_pins
}

flake_evaluates() {
	local out="$tmp/eval.json" err="$tmp/eval.err" image want_image n missing
	if ! nix_eval_flake "$repo" "$out" "$err"; then
		cat "$err"
		return 1
	fi
	# Each output a derivation (or, for home.file, a store path).
	jq -e '.drvPaths | to_entries | all(.value | test("^/nix/store/[0-9a-z]{32}-"))' "$out" >/dev/null || {
		jq '.drvPaths' "$out"
		echo "an output is not a store path"
		return 1
	}
	missing=$(jq -r '[
		"packages.x86_64-linux.egoagent", "packages.x86_64-linux.egoengine-dev-base-oci",
		"packages.x86_64-linux.default", "checks.x86_64-linux.egoagent", "checks.x86_64-linux.home-manager",
		"devShells.x86_64-linux.default", "formatter.x86_64-linux",
		"homeConfigurations.\"joshsymonds@egoengine\".activationPackage"
	] - (.drvPaths | keys) | join(", ")' "$out")
	[[ -z $missing ]] || {
		echo "not evaluated: $missing"
		return 1
	}
	# The image is named as the workflow publishes it and tagged with the
	# flake's short revision.
	want_image=$(sed -n 's/^  IMAGE: *//p' .github/workflows/image.yml)
	image=$(jq -r '.image.imageName' "$out")
	[[ -n $want_image && $image == "$want_image" ]] || {
		echo "the flake names the image '$image', .github/workflows/image.yml publishes '$want_image'"
		return 1
	}
	[[ $(jq -r '.image.imageTag' "$out") == $(jq -r '.rev[0:7]' "$out") ]] || {
		echo "the image tag $(jq -r '.image.imageTag' "$out") is not the short revision"
		return 1
	}
	# Codex keeps its credentials in the file egoagent installs, not in a
	# keyring (which deletes auth.json).
	[[ $(jq -r '.codexSettings.cli_auth_credentials_store' "$out") == file && $(jq -r '.drvPaths | has("home.file: .codex/config.toml")' "$out") == true ]] || {
		echo "Home Manager does not write ~/.codex/config.toml with cli_auth_credentials_store = \"file\": $(jq -c '.codexSettings' "$out")"
		return 1
	}
	n=$(jq '.drvPaths | length' "$out")
	echo "$n derivations and store paths (flake outputs, home.packages, home.file), no warnings; image $(jq -r '.drvPaths["packages.x86_64-linux.egoengine-dev-base-oci"]' "$out")"
}

# must_fail NAME FILE SED WANT...: in a copy of the tree, FILE changed by the
# sed expression SED must fail the evaluation with a message holding each
# WANT.
must_fail() {
	local name=$1 file=$2 expr=$3 dir
	shift 3
	dir="$tmp/variants/${name// /-}"
	mkdir -p "$dir"
	cp -r flake.nix flake.lock nix go.mod go.sum cmd internal bench "$dir/"
	sed -i "$expr" "$dir/$file"
	if cmp -s "$file" "$dir/$file"; then
		echo "$name: the change to $file did not apply ($expr)"
		return 1
	fi
	if nix_eval_flake "$dir" "$dir.json" "$dir.err"; then
		echo "$name: the evaluation passed"
		return 1
	fi
	local want
	for want; do
		grep -qF -- "$want" "$dir.err" || {
			echo "$name: the message does not say '$want':"
			sed 's/^/  /' "$dir.err"
			return 1
		}
	done
	# The first line that says what is wrong, as the proof.
	awk 'NF && !/^error: *$/ && !/Failed assertions:/ { sub(/^ +/, ""); print substr($0, 1, 240); exit }' "$dir.err"
}

# The cases the evaluation must refuse, each a change to a copy of the tree.
fails_on_misspelled_option() {
	must_fail "misspelled option" nix/home/neovim.nix 's/^    initLua = /    initLau = /' \
		"The option \`programs.neovim.initLau' does not exist" "nix/home/neovim.nix"
}
fails_on_removed_option() {
	must_fail "removed option" nix/home/direnv.nix 's/^    nix-direnv.enable = true;/&\n    nix-direnv.enableFlakes = true;/' \
		"programs.direnv.nix-direnv.enableFlakes" "no longer has any effect" "nix/home/direnv.nix"
}
fails_on_wrong_image_argument() {
	must_fail "wrong argument to image.nix" flake.nix 's/inherit egoagent egoagentConfig home rev fullRev;/inherit egoagent home rev fullRev; egoagentConf = egoagentConfig;/' \
		'without required argument "egoagentConfig"' "nix/image.nix"
}
fails_on_package_missing_from_stand_in() {
	must_fail "package missing from the stand-in" nix/home/dev-tools.nix 's/^    htop$/&\n    btop/' \
		"undefined variable 'btop'" "nix/home/dev-tools.nix" "add it to nix/tests/eval/stand-in/packages.nix"
}
fails_on_warning() {
	must_fail "a warning" nix/home/neovim.nix 's/^    initLua = /    extraLuaConfig = /' \
		"has been renamed to \`programs.neovim.initLua'" "warnings (they fail the evaluation)"
}
fails_on_unfree_package() {
	must_fail "unfree package not allowed" flake.nix 's/builtins.elem (lib.getName pkg) \["1password-cli" "_1password-cli"\]/false/' \
		"_1password-cli is unfree"
}

# toml FILE: the attrset of a .nix file as TOML, as pkgs.formats.toml renders
# it (through JSON; tomlkit is the TOML writer of remarshal, which
# formats.toml runs). Extra Nix expression text in $2 is merged over it.
render_toml() {
	nix-instantiate --eval --strict --json -E "(import $1) // (${2:-{\}})" 2>/dev/null |
		/usr/bin/python3 -c 'import json, sys, tomlkit; sys.stdout.write(tomlkit.dumps(json.load(sys.stdin)))'
}

image_config_loads() {
	local home="$tmp/config-home" vault="$tmp/vault" bin="$tmp/egoagent" out f
	render_toml "$repo/nix/egoagent/settings.nix" >"$tmp/config.toml" || {
		echo "cannot render nix/egoagent/settings.nix as TOML"
		return 1
	}
	go build -tags urfave_cli_no_docs -o "$bin" ./cmd/egoagent || return 1
	mkdir -p "$home"
	# egoagent's own loader: exit 2 and file:line on anything it refuses.
	HOME=$home "$bin" --config "$tmp/config.toml" status || {
		echo "egoagent refuses the image's configuration (rendered from nix/egoagent/settings.nix):"
		cat -n "$tmp/config.toml"
		return 1
	}
	if ! grep -q '^vault = "egoengine"' "$tmp/config.toml" || ! grep -q '^prefix = "home/"' "$tmp/config.toml"; then
		echo "the image's configuration does not mirror the egoengine vault's home/ Documents"
		return 1
	fi

	# The mirror, run for real with the directory source standing in for
	# 1Password (and no secrets, which need the service account): Documents
	# titled home/<path> land at ~/<path>, 0600, as ee sync put them.
	mkdir -p "$vault/egoengine/home/.ssh" "$vault/egoengine/home/notes"
	printf 'Host *\n' >"$vault/egoengine/home/.ssh/config"
	printf 'todo\n' >"$vault/egoengine/home/notes/todo.md"
	printf 'not for the home\n' >"$vault/egoengine/elsewhere"
	render_toml "$repo/nix/egoagent/settings.nix" "{ source = { kind = \"dir\"; dir = \"$vault\"; }; secret = []; }" >"$tmp/mirror.toml" || return 1
	out=$(HOME=$home "$bin" --config "$tmp/mirror.toml" sync 2>&1) || {
		echo "egoagent sync with the image's mirror failed:"
		echo "$out"
		return 1
	}
	for f in .ssh/config notes/todo.md; do
		[[ -f $home/$f && $(stat -c %a "$home/$f") == 600 ]] || {
			echo "the Document home/$f did not land at ~/$f with mode 0600"
			return 1
		}
	done
	[[ ! -e $home/elsewhere ]] || {
		echo "a Document outside home/ was mirrored"
		return 1
	}
	# What docs/image.md tells the owner to compare with ee sync's list.
	out=$(HOME=$home "$bin" --config "$tmp/mirror.toml" status 2>&1)
	grep -q '^home/notes/todo.md  *fresh  *~/notes/todo.md' <<<"$out" || {
		echo "$out"
		echo "egoagent status does not list the mirrored home/notes/todo.md"
		return 1
	}
	echo "egoagent loads it; its mirror put home/.ssh/config and home/notes/todo.md at ~/, 0600"
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

workflow_properties() {
	/usr/bin/python3 scripts/test-workflows.py
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
if [[ -n ${EGOENGINE_SKIP_NIX_EVAL:-} ]]; then
	for name in "vendored Home Manager is flake.lock's" "flake outputs evaluate" "evaluation fails on six broken trees"; do
		skip "$name" "EGOENGINE_SKIP_NIX_EVAL: $EGOENGINE_SKIP_NIX_EVAL"
	done
elif nix_eval_vendor_present; then
	if nix_eval_prepare >"$tmp/prepare.out" 2>&1; then
		check "vendored Home Manager is flake.lock's" home_manager_is_pinned
		check "flake outputs evaluate (pinned Home Manager, stand-in nixpkgs)" flake_evaluates
		check "evaluation fails: misspelled Home Manager option" fails_on_misspelled_option
		check "evaluation fails: removed Home Manager option" fails_on_removed_option
		check "evaluation fails: wrong argument to image.nix" fails_on_wrong_image_argument
		check "evaluation fails: package missing from the stand-in" fails_on_package_missing_from_stand_in
		check "evaluation fails: a warning" fails_on_warning
		check "evaluation fails: unfree package not allowed" fails_on_unfree_package
	else
		failed=$((failed + 1))
		failures+=("vendored trees")
		echo "FAIL  vendored trees for the evaluation"
		sed 's/^/      /' "$tmp/prepare.out"
	fi
elif [[ ${CI:-} == true ]]; then
	failed=$((failed + 1))
	failures+=("flake evaluation")
	echo "FAIL  flake evaluation: CI=true but no Home Manager tarball in $nix_eval_vendor (CI must have ../shared/vendor)"
else
	for name in "vendored Home Manager is flake.lock's" "flake outputs evaluate" "evaluation fails on six broken trees"; do
		skip "$name" "no tarballs in $nix_eval_vendor"
	done
	echo "!!!!  the flake was NOT evaluated: no tarballs in $nix_eval_vendor; run nix flake check --no-build where nixpkgs can be fetched" >&2
fi
check "image config loads in egoagent and mirrors home/" image_config_loads
check "go.mod go line <= pinned nixpkgs Go" go_line_fits_nixpkgs
check "vendorHash matches go mod vendor" vendor_hash_current
check "Go code is inside the Nix source" go_code_in_nix_source
check "Neovim Lua parses" neovim_lua_parses
check "git hooks" git_hooks_work
check "actionlint .github/workflows" workflows_lint
check "workflow properties (scripts/test-workflows.py)" workflow_properties
check "shellcheck every shell script" shell_scripts_pass_shellcheck

if ((failed)); then
	echo "test-nix: failed: ${failures[*]}"
fi
echo "test-nix: $passed passed, $failed failed, $skipped skipped"
((failed == 0))
