#!/usr/bin/env bash
# Pushes the egoengine Coder templates to the Coder deployment the `coder` CLI
# is logged in to (`coder login https://egoengine.example`).
#
#   EGOENGINE_IMAGE_TAG=abc1234 scripts/push-templates.sh [TEMPLATE...]
#   scripts/push-templates.sh --image-tag abc1234 [--message MSG] [TEMPLATE...]
#   scripts/push-templates.sh --stage DIR [TEMPLATE...]   # assemble only, no push
#
# TEMPLATE defaults to the Docker templates (egoengine-shell
# egoengine-envbuilder); egoengine-kubernetes is pushed only when named, since
# it needs a cluster the Coder server can reach (its README says what).
#
# Why it assembles first: `coder templates push` uploads one folder and does
# not follow symlinks (a symlinked folder arrives empty), while both templates
# use the shared modules in coder-templates/modules through a `modules`
# symlink. So each template is copied, symlinks resolved, into a staging
# folder, without its tests/ (OpenTofu test files, which Coder does not need),
# hidden files or any .terraform.lock.hcl (a lock file made here would hold
# hashes of local provider builds, not of the releases Coder downloads).
#
# The 1Password token is never passed here: Coder's server gives it to every
# build from TF_VAR_op_service_account_token in its own environment.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
templates_dir=$root/coder-templates
all_templates=(egoengine-shell egoengine-envbuilder egoengine-kubernetes)
default_templates=(egoengine-shell egoengine-envbuilder)
push_tmp=""

# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

# stage_template NAME DEST: writes the upload folder of one template to DEST.
stage_template() {
	local name=$1 dest=$2 src=$templates_dir/$1 entry base
	[[ -d $src ]] || die "no template $name in $templates_dir (known: ${all_templates[*]})"
	rm -rf "$dest"
	mkdir -p "$dest"
	for entry in "$src"/*; do
		base=$(basename "$entry")
		case $base in
		tests | *.tfvars | *.tfvars.json | *.tfstate | *.tfstate.*) continue ;;
		esac
		cp -RL "$entry" "$dest/"
	done
	# The copies of shared folders bring their own clutter along.
	find "$dest" \( -name '.*' -o -name tests -o -name '*.tfstate*' \) -prune -exec rm -rf {} +
	if [[ -n $(find "$dest" -type l) ]]; then
		die "$dest still holds symlinks after assembly; Coder would upload them empty"
	fi
	[[ -n $(find "$dest" -maxdepth 1 -name '*.tf') ]] || die "$dest has no .tf file"
}

main() {
	local stage_dir="" image_tag=${EGOENGINE_IMAGE_TAG:-} message="" names=() name
	while (($#)); do
		case $1 in
		--stage) stage_dir=${2:?--stage needs a folder}; shift 2 ;;
		--image-tag) image_tag=${2:?--image-tag needs a tag}; shift 2 ;;
		--message | -m) message=${2:?--message needs text}; shift 2 ;;
		-h | --help) usage; exit 0 ;;
		-*) die "unknown option $1 (see --help)" ;;
		*) names+=("$1"); shift ;;
		esac
	done
	((${#names[@]})) || names=("${default_templates[@]}")

	if [[ -n $stage_dir ]]; then
		mkdir -p "$stage_dir"
		for name in "${names[@]}"; do
			stage_template "$name" "$stage_dir/$name"
			log "staged $name in $stage_dir/$name"
		done
		return
	fi

	command -v coder >/dev/null || die "the coder CLI is not on PATH: install it from your Coder deployment (https://coder.com/docs/install/cli) and run 'coder login <url>'"
	[[ -n $image_tag ]] || die "no image tag: set EGOENGINE_IMAGE_TAG or pass --image-tag (the tag CI published for ghcr.io/veraticus/nix-config/egoengine, such as the 7-character nix-config revision; never 'latest')"
	[[ $image_tag != latest ]] || die "image tag 'latest' is refused: pin the revision CI published"
	if [[ -z $message ]]; then
		message="egoengine $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown), image $image_tag"
	fi

	push_tmp=$(mktemp -d "${TMPDIR:-/tmp}/egoengine-push.XXXXXX")
	trap 'rm -rf "$push_tmp"' EXIT
	for name in "${names[@]}"; do
		stage_template "$name" "$push_tmp/$name"
		log "pushing $name (image tag $image_tag)"
		coder templates push "$name" \
			--directory "$push_tmp/$name" \
			--variable "image_tag=$image_tag" \
			--message "$message" \
			--ignore-lockfile \
			--yes
	done
}

main "$@"
