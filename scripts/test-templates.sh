#!/usr/bin/env bash
# Tests the Coder templates offline with OpenTofu (`make test-templates`):
#   1. tofu fmt -check over coder-templates/;
#   2. for each template, exactly what scripts/push-templates.sh would upload,
#      plus its tests/ and local stand-ins for the two registry.coder.com IDE
#      modules: tofu init (from the local provider mirror), validate, test;
#   3. broken copies (the token moved into the agent's env, into the start
#      script, into a parameter; the variable no longer sensitive; the image
#      unpinned; ENVBUILDER_WORKDIR for ENVBUILDER_WORKSPACE_FOLDER; either
#      Docker template without its stop grace or restart policy; the shell
#      template without its healthcheck wait; the envbuilder template
#      restarting a builder container, never restarting a cached one, or
#      ignoring docker_network; the kubernetes template with the token as a
#      value, without its stop grace, with privilege escalation, a hostPath,
#      the home counted by start_count, an ingress rule, a private range
#      open, another pull Secret, or a fixed CPU) must each
#      make `tofu test` fail, with the message of the check that catches it;
#   4. the Docker home volume survives a template update: a plan against a
#      state holding it at its address before the shared module moves it and
#      destroys nothing (and a copy without the `moved` block is caught);
#   5. the shell scripts the templates run: shellcheck, and the egoagent start
#      script and envbuilder init wrapper run against stand-in commands;
#   6. the checks the Docker templates' tests share (the token's, the stop
#      grace and network) are the same text in each (and a copy that
#      drifted alone is caught).
# OpenTofu and the providers come from scripts/tools.sh (built once, cached).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
templates_dir=$root/coder-templates
templates=(egoengine-shell egoengine-envbuilder egoengine-kubernetes)
# The templates that run a Docker container: the token variable, the home
# volume's `moved` block and the shared checks are theirs alone.
docker_templates=(egoengine-shell egoengine-envbuilder)

# A failed check says FAIL, as the other suites do.
die_tag=FAIL
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"

command -v shellcheck >/dev/null || die "shellcheck is not installed (scripts/deps.sh installs it)"

eval "$("$root/scripts/tools.sh")"
export TF_CLI_CONFIG_FILE TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1
tofu() { "$TOFU" "$@"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/egoengine-templates.XXXXXX")
trap 'rm -rf "$work"' EXIT

# with_standins DIR: points the IDE module of the template copy in DIR at the
# local stand-ins instead of registry.coder.com, and checks both were swapped.
with_standins() {
	local ides=$1/modules/egoengine-ides
	cp -R "$templates_dir/testdata/standin-code-server" "$templates_dir/testdata/standin-jetbrains" "$ides/"
	# Rewrites `source = "registry.coder.com/coder/NAME/coder"` to the stand-in
	# and drops the `version` line of that module block (local modules have none).
	awk '
		/^[[:space:]]*source[[:space:]]*=[[:space:]]*"registry\.coder\.com\/coder\/[a-z-]+\/coder"/ {
			name = $0; sub(/.*registry\.coder\.com\/coder\//, "", name); sub(/\/coder".*/, "", name)
			sub(/"registry\.coder\.com.*/, "\"./standin-" name "\""); swapped = 1; print; next
		}
		swapped && /^[[:space:]]*version[[:space:]]*=/ { swapped = 0; next }
		/^}/ { swapped = 0 }
		{ print }
	' "$ides/main.tf" >"$ides/main.tf.new"
	mv "$ides/main.tf.new" "$ides/main.tf"
	if grep -q '"registry\.coder\.com' "$ides/main.tf" || [[ $(grep -c 'source *= *"\./standin-' "$ides/main.tf") -ne 2 ]]; then
		die "could not swap the IDE modules for stand-ins in $ides/main.tf"
	fi
}

# prepare NAME DEST: the upload folder of template NAME, plus tests and stand-ins.
prepare() {
	"$root/scripts/push-templates.sh" --stage "$(dirname "$2")" "$1" 2>/dev/null
	[[ $(basename "$2") == "$1" ]] || die "internal: prepare wants DEST ending in $1"
	cp -R "$templates_dir/$1/tests" "$2/tests"
	with_standins "$2"
}

# run_tofu_test DIR OUT: init, validate and test in DIR, all output into OUT.
run_tofu_test() {
	(
		cd "$1"
		tofu init -backend=false -input=false -no-color &&
			tofu validate -no-color &&
			tofu test -no-color
	) >"$2" 2>&1
}

# flat FILE: the text of FILE on one line, box-drawing and repeated spaces
# removed, so a message OpenTofu wrapped over lines still matches.
flat() { sed 's/[│╷╵]//g' "$1" | tr -s '[:space:]' ' '; }

step_fmt() {
	log "tofu fmt -check"
	tofu fmt -check -diff -recursive -no-color "$templates_dir" >&2 || die "tofu fmt: files above need \`tofu fmt -recursive coder-templates\`"
}

step_upload_contents() {
	local name dir
	"$root/scripts/push-templates.sh" --stage "$work/upload" "${templates[@]}" 2>/dev/null
	for name in "${templates[@]}"; do
		dir=$work/upload/$name
		[[ -f $dir/main.tf && -f $dir/README.md && -f $dir/modules/egoengine-agent/main.tf && -f $dir/modules/egoengine-agent/egoagent-start.sh && -f $dir/modules/egoengine-agent/egoagent-stop.sh && -f $dir/modules/egoengine-home/main.tf && -f $dir/modules/egoengine-container/main.tf ]] ||
			die "$name: the upload folder lacks main.tf, README.md or the shared modules"
		[[ -z $(find "$dir" -name '.terraform*' -o -name tests -o -name 'standin-*' -o -type l) ]] ||
			die "$name: the upload folder holds a lock file, tests, stand-ins or symlinks: $(find "$dir" -name '.terraform*' -o -name tests -o -name 'standin-*' -o -type l)"
		grep -q 'registry.coder.com/coder/code-server/coder' "$dir/modules/egoengine-ides/main.tf" ||
			die "$name: the upload folder must use the real code-server module"
	done
	log "upload folders hold the templates and shared modules, and no lock file, tests, stand-ins or symlinks"
}

step_tofu_test() {
	local name dir out
	for name in "${templates[@]}"; do
		dir=$work/intact/$name
		out=$work/intact-$name.log
		prepare "$name" "$dir"
		log "$name: tofu init, validate, test"
		if ! run_tofu_test "$dir" "$out"; then
			cat "$out" >&2
			die "$name: tofu init/validate/test failed (output above)"
		fi
		grep -E '^(Success!|.*(pass|fail)|[0-9]+ passed)' "$out" >&2 || true
		grep -q ' 0 failed' "$out" || { cat "$out" >&2; die "$name: tofu test did not report 0 failed"; }
	done
}

# mutate FILE SED_SCRIPT: edits FILE in place; fails if nothing changed, so a
# broken copy can never pass by accident because the edit missed.
mutate() {
	cp "$1" "$1.orig"
	sed -i -e "$2" "$1"
	if cmp -s "$1" "$1.orig"; then die "mutation '$2' changed nothing in $1"; fi
	rm -f "$1.orig"
}

# Routes the token into the agent module as input `leak`.
leak_into_agent_module() {
	local dir=$1
	printf '\nvariable "leak" {\n  type    = string\n  default = ""\n}\n' >>"$dir/modules/egoengine-agent/variables.tf"
	mutate "$dir/main.tf" 's|^  home   = local.home$|&\n  leak   = var.op_service_account_token|'
}

# broken NAME TEMPLATE EXPECTED: makes a broken copy of TEMPLATE with the
# mutation function break_NAME and asserts that tofu test fails with EXPECTED.
broken() {
	local what=$1 name=$2 expected=$3 dir out
	dir=$work/broken-$what/$name
	out=$work/broken-$what-$name.log
	prepare "$name" "$dir"
	"break_$what" "$dir"
	only_up_to "$dir/tests/$name.tftest.hcl" "$expected"
	if run_tofu_test "$dir" "$out"; then
		cat "$out" >&2
		die "$name: the broken copy '$what' passed tofu test; the tests no longer catch it"
	fi
	if ! flat "$out" | grep -qF -- "$expected"; then
		cat "$out" >&2
		die "$name: the broken copy '$what' failed, but not with \"$expected\""
	fi
	log "$name: broken copy '$what' fails as it should: \"$expected\""
}

# only_up_to FILE TEXT: cuts a test file after the run block that last
# names TEXT (the message a broken copy must fail with). Runs share state
# only forward, so the runs kept behave exactly as in the whole file; the
# ones after it cannot make the copy fail with TEXT, only cost a plan each.
# A file that does not name TEXT is left whole.
only_up_to() {
	local file=$1 text=$2 last
	last=$(grep -nF -- "$text" "$file" | tail -n 1 | cut -d: -f1)
	[[ -n $last ]] || return 0
	awk -v from="$last" 'NR <= from { print; next } { print } /^}/ { exit }' "$file" >"$file.cut"
	mv "$file.cut" "$file"
}

break_agent_env() {
	leak_into_agent_module "$1"
	mutate "$1/modules/egoengine-agent/main.tf" 's|^  dir  = var.home$|&\n  env  = { OP_SERVICE_ACCOUNT_TOKEN = nonsensitive(var.leak) }|'
}
break_agent_env_marked() {
	leak_into_agent_module "$1"
	mutate "$1/modules/egoengine-agent/main.tf" 's|^  dir  = var.home$|&\n  env  = { OP_SERVICE_ACCOUNT_TOKEN = var.leak }|'
}
break_script_text() {
	leak_into_agent_module "$1"
	# shellcheck disable=SC2016 # HCL interpolation, not shell
	mutate "$1/modules/egoengine-agent/main.tf" 's|file("${path.module}/egoagent-start.sh")|"export OP_SERVICE_ACCOUNT_TOKEN=${nonsensitive(var.leak)}\\n${&}"|'
}
break_not_sensitive() {
	mutate "$1/main.tf" '/^variable "op_service_account_token"/,/^}/{/sensitive *= *true/d}'
}
break_parameter() {
	mutate "$1/main.tf" '/^data "coder_parameter" "custom_repo_url"/,/^}/s|default *= *""|default      = nonsensitive(var.op_service_account_token)|'
}
break_unpinned() {
	# shellcheck disable=SC2016 # HCL interpolation, not shell
	mutate "$1/main.tf" 's|egoengine:${var.image_tag}|egoengine:latest|'
}
break_no_grace() {
	mutate "$1/main.tf" '/^  destroy_grace_seconds *=/d'
}
break_no_restart() {
	mutate "$1/main.tf" '/^  restart *= *"unless-stopped"/d'
}
break_no_wait() {
	mutate "$1/main.tf" 's/^  wait *= *true/  wait         = false/'
}
break_always_restart() {
	mutate "$1/main.tf" 's/^  restart *= *local.runs_cached_image .*/  restart = "unless-stopped"/'
}
break_never_restart() {
	mutate "$1/main.tf" 's/^  restart *= *local.runs_cached_image .*/  restart = "no"/'
}
break_no_network() {
	mutate "$1/main.tf" '/^  network_mode *= *var.docker_network/d'
}
break_workdir() {
	mutate "$1/main.tf" 's|ENVBUILDER_WORKSPACE_FOLDER *=|ENVBUILDER_WORKDIR =|'
}
# The kubernetes template's: the token as a literal where the Secret
# reference was, and its other guarantees undone one at a time.
break_token_literal() {
	mutate "$1/main.tf" '/^              value_from {$/,/^              }$/c\              value = "ops_TEST-SENTINEL-not-a-real-token"'
}
break_no_pod_grace() {
	mutate "$1/main.tf" '/^        termination_grace_period_seconds *=/d'
}
break_escalation() {
	mutate "$1/main.tf" '/^            allow_privilege_escalation *= *false$/d'
}
break_host_path() {
	mutate "$1/main.tf" 's|^        dynamic "volume" {$|        volume {\n          name = "host"\n          host_path {\n            path = "/var/run"\n          }\n        }\n&|'
}
break_home_counted() {
	mutate "$1/main.tf" 's|^resource "kubernetes_persistent_volume_claim_v1" "home" {$|&\n  count = data.coder_workspace.me.start_count|'
}
break_ingress() {
	mutate "$1/main.tf" 's|^    policy_types = \["Ingress", "Egress"\]$|&\n    ingress {}|'
}
break_private_egress() {
	mutate "$1/main.tf" 's|"10.0.0.0/8", ||'
}
break_pull_secret() {
	mutate "$1/main.tf" 's|^            name = image_pull_secrets.value$|            name = "another"|'
}
break_fixed_cpu() {
	mutate "$1/main.tf" 's|^              cpu    = data.coder_parameter.cpu.value$|              cpu    = "2"|'
}

# broken_bg: broken, as a job beside the others, at most one per core: each
# is a tofu init and test of a folder of its own, mostly OpenTofu's and the
# providers' start-up on one core. step_regressions waits for them all.
running=0 failed=0
broken_bg() {
	if ((running >= $(nproc))); then
		wait -n || failed=$((failed + 1))
		running=$((running - 1))
	fi
	broken "$@" &
	running=$((running + 1))
}

step_regressions() {
	local name
	running=0 failed=0
	for name in "${docker_templates[@]}"; do
		broken_bg agent_env "$name" "The token leaked into what Coder shows viewers"
		broken_bg agent_env_marked "$name" "A sensitive value reaches what Coder shows viewers"
		broken_bg not_sensitive "$name" "op_service_account_token must be a sensitive variable."
	done
	broken_bg script_text egoengine-shell "The token leaked into what Coder shows viewers"
	broken_bg unpinned egoengine-shell "The container must run the egoengine image at the tag given in image_tag."
	broken_bg no_grace egoengine-shell "destroy_grace_seconds must leave the agent time to run its stop scripts"
	broken_bg no_restart egoengine-shell "The container must come back after an engine restart"
	broken_bg no_wait egoengine-shell "The build must wait for a healthcheck that reaches Coder's /healthz"
	broken_bg parameter egoengine-envbuilder "The token must not appear in any coder_parameter."
	broken_bg unpinned egoengine-envbuilder "fallback_image must default to the egoengine image at image_tag."
	broken_bg workdir egoengine-envbuilder "lacks part of its configuration"
	broken_bg no_grace egoengine-envbuilder "destroy_grace_seconds must leave the agent time to run its stop scripts"
	broken_bg never_restart egoengine-envbuilder "A container of the cached image must come back after an engine restart"
	broken_bg always_restart egoengine-envbuilder "A container that builds the devcontainer must not be restarted by the engine"
	broken_bg no_network egoengine-envbuilder "The container must join the network named by docker_network."
	broken_bg token_literal egoengine-kubernetes "OP_SERVICE_ACCOUNT_TOKEN must come from the Secret"
	broken_bg no_pod_grace egoengine-kubernetes "termination_grace_period_seconds must leave the agent time to run its stop scripts."
	broken_bg escalation egoengine-kubernetes "The one container must run as root for envbuilder only, with allow_privilege_escalation = false"
	broken_bg host_path egoengine-kubernetes "No volume of the Pod may be a hostPath."
	broken_bg home_counted egoengine-kubernetes "The home claim must not be counted by start_count"
	broken_bg ingress egoengine-kubernetes "with no ingress rule at all"
	broken_bg private_egress egoengine-kubernetes "Egress must be exactly DNS (UDP and TCP 53) to kube-system, and the internet"
	broken_bg pull_secret egoengine-kubernetes "The Pod must pull its images with the Secret ghcr-pull."
	broken_bg fixed_cpu egoengine-kubernetes "The container's requests and limits must be the cpu and memory parameters"
	while ((running > 0)); do
		wait -n || failed=$((failed + 1))
		running=$((running - 1))
	done
	((failed == 0)) || die "$failed broken copies were not caught as they should be (see above)"
}

# The Docker templates' tests carry the same checks, between the lines
# "# BEGIN shared checks" and "# END shared checks", so that
# their messages (which the broken copies above expect) cannot drift apart.
shared_begin='# BEGIN shared checks'
shared_end='# END shared checks'

# shared_checks FILE: the shared block of one test file, markers included.
shared_checks() {
	awk -v b="$shared_begin" -v e="$shared_end" 'index($0, b) == 1 { on = 1 } on { print } index($0, e) == 1 { on = 0 }' "$1"
}

# shared_checks_differ A B: says how the shared blocks of two test files
# differ; prints nothing when both hold one whole block of the same text.
shared_checks_differ() {
	local f text=()
	for f in "$@"; do
		text+=("$(shared_checks "$f")")
		if [[ $(grep -c "^$shared_begin" "$f") != 1 || $(grep -c "^$shared_end" "$f") != 1 || ${text[-1]} != *"$shared_end" ]]; then
			echo "$f: no single block between \"$shared_begin\" and \"$shared_end\""
			return 0
		fi
	done
	diff -u --label "$1" --label "$2" <(printf '%s\n' "${text[0]}") <(printf '%s\n' "${text[1]}") || true
}

step_shared_checks() {
	local files=() name problem drifted=$work/drifted.tftest.hcl
	for name in "${docker_templates[@]}"; do files+=("$templates_dir/$name/tests/$name.tftest.hcl"); done
	problem=$(shared_checks_differ "${files[@]}")
	[[ -z $problem ]] || die "the shared checks differ between the templates' tests; make them the same:"$'\n'"$problem"
	# A copy whose message moved on alone must be caught.
	cp "${files[1]}" "$drifted"
	mutate "$drifted" 's/op_service_account_token must be a sensitive variable\./The token variable must be sensitive./'
	[[ -n $(shared_checks_differ "${files[0]}" "$drifted") ]] || die "the drift check did not notice a copy of the shared checks that drifted"
	log "the shared checks are the same in both Docker templates' tests (and a drifted copy is caught)"
}

# The home volume must survive a template update. Before the shared
# egoengine-home module, both templates declared it at the root as
# docker_volume.home; a `moved` block carries it to module.home. A real
# OpenTofu plan against a state holding the volume at its old address (and
# the real providers) must move it and change nothing. The state is written
# here by hand, as a build of the previous layout left it: with no Docker
# engine here no build can make one, and -refresh=false keeps the provider
# from asking Docker about the volume.
ws_id=6f1c2b9e-0000-4000-8000-0000000000a1
owner_id=6f1c2b9e-0000-4000-8000-0000000000a2

old_home_state() {
	cat <<EOF
{
  "version": 4,
  "terraform_version": "1.10.6",
  "serial": 7,
  "lineage": "6f1c2b9e-0000-4000-8000-0000000000a3",
  "outputs": {},
  "resources": [
    {
      "mode": "managed",
      "type": "docker_volume",
      "name": "home",
      "provider": "provider[\"registry.opentofu.org/kreuzwerker/docker\"]",
      "instances": [
        {
          "schema_version": 1,
          "attributes": {
            "id": "coder-$ws_id-home",
            "name": "coder-$ws_id-home",
            "driver": "local",
            "driver_opts": {},
            "mountpoint": "/var/lib/docker/volumes/coder-$ws_id-home/_data",
            "cluster": [],
            "labels": [
              { "label": "coder.owner", "value": "joshsymonds" },
              { "label": "coder.owner_id", "value": "$owner_id" },
              { "label": "coder.workspace_id", "value": "$ws_id" },
              { "label": "coder.workspace_name_at_creation", "value": "Home" }
            ]
          }
        }
      ]
    }
  ]
}
EOF
}

# home_plan_problem DIR TRANSITION: plans the template copy in DIR (its state
# holding the old home) for a build with that transition, as Coder's
# provisioner would (workspace details in CODER_* variables); prints what is
# wrong with the plan for the home volume, nothing when it only moves.
home_plan_problem() {
	local dir=$1 transition=$2 out=$1/plan-$2.log
	if ! (
		cd "$dir" &&
			CODER_AGENT_URL=http://localhost:3000 CODER_WORKSPACE_TRANSITION=$transition \
				CODER_WORKSPACE_ID=$ws_id CODER_WORKSPACE_NAME=Home \
				CODER_WORKSPACE_OWNER=joshsymonds CODER_WORKSPACE_OWNER_ID=$owner_id \
				CODER_WORKSPACE_TEMPLATE_ID=6f1c2b9e-0000-4000-8000-0000000000a4 \
				CODER_WORKSPACE_TEMPLATE_NAME="$(basename "$dir")" CODER_WORKSPACE_TEMPLATE_VERSION=update-check \
				tofu plan -refresh=false -input=false -no-color -var image_tag=abc1234 \
				-var op_service_account_token=ops_TEST-SENTINEL-not-a-real-token -out="plan-$transition" &&
			tofu show -json "plan-$transition" >"plan-$transition.json"
	) >"$out" 2>&1; then
		cat "$out" >&2
		die "$(basename "$dir"): tofu plan against the old home's state failed (output above)"
	fi
	# shellcheck disable=SC2016 # jq variables, not shell
	jq -r '
		[.resource_changes[] | select(.type == "docker_volume")] as $v
		| ($v | map("\(.address) \(.change.actions | join("+"))") | join(", ")) as $seen
		| if any($v[]; .change.actions | index("delete")) then
			"destroys a home volume (\($seen))"
		elif ($v | length) != 1 or ($v | map(select(.address == "module.home.docker_volume.home" and .previous_address == "docker_volume.home" and .change.actions == ["no-op"])) | length) != 1 then
			"does not just move docker_volume.home to module.home.docker_volume.home (\($seen))"
		else empty end
	' "$dir/plan-$transition.json"
}

step_home_survives_update() {
	local name what dir transition problem
	command -v jq >/dev/null || die "jq is not installed (scripts/deps.sh installs it)"
	for name in "${docker_templates[@]}"; do
		for what in intact no_moved; do
			dir=$work/update-$what/$name
			prepare "$name" "$dir"
			# The broken copy: the template without its moved block.
			[[ $what == intact ]] || mutate "$dir/main.tf" '/^moved {$/,/^}$/d'
			old_home_state >"$dir/terraform.tfstate"
			(cd "$dir" && tofu init -input=false -no-color) >"$dir/init.log" 2>&1 || { cat "$dir/init.log" >&2; die "$name: tofu init failed"; }
			for transition in start stop; do
				problem=$(home_plan_problem "$dir" "$transition")
				if [[ $what == intact && -n $problem ]]; then
					die "$name: a $transition build after the update $problem"
				elif [[ $what == no_moved && $problem != "destroys a home volume"* ]]; then
					die "$name: without its moved block the plan check must see the home destroyed, got: ${problem:-nothing wrong}"
				fi
			done
		done
		log "$name: start and stop builds after the update move docker_volume.home into module.home with no change; without the moved block the check sees it destroyed"
	done
}

# The start script against a stand-in egoagent that exits with a chosen code,
# and whose `start` leaves a child holding stdout and stderr, as a daemon
# that forgot to redirect would: the script must still return at once.
step_start_script() {
	local script=$templates_dir/modules/egoengine-agent/egoagent-start.sh bin=$work/fake-bin home=$work/fake-home
	local link_rc start_rc want rc out begin elapsed
	shellcheck "$script"
	mkdir -p "$bin" "$home"
	cat >"$bin/egoagent" <<'EOF'
#!/bin/sh
# STAND-IN for egoagent (test only): records its arguments, exits as told.
echo "$*" >>"$FAKE_EGOAGENT_CALLS"
case "$*" in
"image link-home") exit "$FAKE_LINK_RC" ;;
start)
	sleep 30 &
	echo "fake egoagent: started"
	exit "$FAKE_START_RC"
	;;
esac
exit 2
EOF
	chmod +x "$bin/egoagent"
	for link_rc in 0 3; do
		for start_rc in 0 1 2 4; do
			want=$start_rc
			((start_rc != 1)) || want=0
			((want != 0)) || want=$link_rc
			: >"$work/calls"
			begin=$SECONDS
			set +e
			out=$(HOME=$home PATH=$bin:$PATH FAKE_EGOAGENT_CALLS=$work/calls FAKE_LINK_RC=$link_rc FAKE_START_RC=$start_rc timeout 20 sh "$script" 2>&1)
			rc=$?
			set -e
			elapsed=$((SECONDS - begin))
			((elapsed < 10)) || die "start script (link $link_rc, start $start_rc) took ${elapsed}s: a child holds its output pipes"
			[[ $rc -eq $want ]] || die "start script (link $link_rc, start $start_rc) exited $rc, want $want; output: $out"
			[[ $(cat "$work/calls") == $'image link-home\nstart' ]] || die "start script ran: $(cat "$work/calls")"
			[[ $out == *"fake egoagent: started"* ]] || die "start script did not pass egoagent's output on: $out"
			if ((start_rc == 1)); then [[ $out == *"not every secret is fresh"* ]] || die "no warning for a stale secret: $out"; fi
		done
	done
	set +e
	out=$(HOME=$home PATH=/usr/bin:/bin sh "$script" 2>&1)
	rc=$?
	set -e
	[[ $rc -eq 127 && $out == *"egoagent is not on PATH"* ]] || die "without egoagent the start script must exit 127 with a clear message, got $rc: $out"
	log "egoagent-start.sh: shellcheck clean; exit codes mapped (1 -> 0 with a warning, others kept); returns at once with a daemon holding its output"
}

# The stop script against a stand-in daemon: an `egoagent run` that logs
# "stopping" on SIGTERM and takes a moment to end. The script must signal it
# (and only a process that is egoagent's daemon) and wait for it.
step_stop_script() {
	local script=$templates_dir/modules/egoengine-agent/egoagent-stop.sh dir=$work/stop home pid out
	shellcheck "$script"
	home=$dir/home
	mkdir -p "$dir/bin" "$home/.local/state/egoagent"
	cat >"$dir/bin/egoagent" <<'EOF2'
#!/bin/sh
# STAND-IN for egoagent's daemon (test only).
trap 'echo stopping >>"$HOME/.local/state/egoagent/log"; sleep 1; exit 0' TERM
while :; do sleep 0.1; done
EOF2
	chmod +x "$dir/bin/egoagent"
	HOME=$home "$dir/bin/egoagent" run </dev/null >/dev/null 2>&1 &
	pid=$!
	printf '{\n  "pid": %d,\n  "started": "now"\n}\n' "$pid" >"$home/.local/state/egoagent/daemon.json"
	out=$(HOME=$home timeout 30 sh "$script" 2>&1) || die "stop script failed: $out"
	[[ $out == "egoagent stop: daemon $pid stopped" ]] || die "stop script said: $out"
	! kill -0 "$pid" 2>/dev/null || die "the stand-in daemon $pid still runs after the stop script"
	[[ $(cat "$home/.local/state/egoagent/log") == stopping ]] || die "the stand-in daemon did not get SIGTERM"
	# A pid that is not egoagent's daemon is left alone.
	sleep 30 &
	pid=$!
	printf '{"pid": %d}\n' "$pid" >"$home/.local/state/egoagent/daemon.json"
	out=$(HOME=$home sh "$script" 2>&1) || die "stop script failed on a foreign pid: $out"
	kill -0 "$pid" 2>/dev/null || die "the stop script signalled a process that is not egoagent's daemon"
	kill "$pid"
	[[ $out == *"is not egoagent's daemon"* ]] || die "stop script on a foreign pid said: $out"
	log "egoagent-stop.sh: shellcheck clean; SIGTERMs the daemon daemon.json names and waits for it; leaves other processes alone"
}

# The envbuilder init wrapper, rendered by OpenTofu's templatefile exactly as
# the template does, then run the way envbuilder runs it (/bin/sh -c).
step_init_wrapper() {
	local dir=$work/render out
	mkdir -p "$dir"
	cp "$templates_dir/egoengine-envbuilder/init-as-user.sh.tftpl" "$dir/"
	cat >"$dir/main.tf" <<'EOF'
variable "user" { type = string }
variable "home" { type = string }
output "script" {
  value = templatefile("${path.module}/init-as-user.sh.tftpl", {
    user        = var.user
    home        = var.home
    init_script = "#!/bin/sh\necho \"agent-ran user=$(id -un) home=$HOME token=$CODER_AGENT_TOKEN\"\n"
  })
}
EOF
	render() { # USER HOME OUTFILE
		(cd "$dir" && tofu init -input=false -no-color >/dev/null &&
			tofu apply -auto-approve -input=false -no-color -var "user=$1" -var "home=$2" >/dev/null &&
			tofu output -raw script) >"$3"
	}
	render joshsymonds /home/joshsymonds "$dir/wrapper.sh"
	shellcheck --shell=sh "$dir/wrapper.sh"

	# Already the right user: runs the agent script directly.
	render "$(id -un)" "$HOME" "$dir/same.sh"
	out=$(CODER_AGENT_TOKEN=t0k /bin/sh -c "$(cat "$dir/same.sh")" 2>&1) || true
	[[ $out == "agent-ran user=$(id -un) home=$HOME token=t0k" ]] || die "init wrapper as the same user: $out"

	if [[ $(id -u) -eq 0 ]] && id nobody >/dev/null 2>&1 && command -v setpriv >/dev/null; then
		# Root, as envbuilder runs an image without USER: must switch user.
		render nobody /nonexistent "$dir/switch.sh"
		out=$(cd / && CODER_AGENT_TOKEN=t0k /bin/sh -c "$(cat "$dir/switch.sh")" 2>&1) || true
		[[ $out == "agent-ran user=nobody home=/nonexistent token=t0k" ]] || die "init wrapper as root must start the agent as the user: $out"
		# Another unprivileged user (a devcontainer with its own containerUser):
		# cannot switch, so it warns and starts the agent as that user.
		out=$(cd / && CODER_AGENT_TOKEN=t0k setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups \
			/bin/sh -c "$(cat "$dir/wrapper.sh")" 2>&1) || true
		[[ $out == *"runs as 'nobody' and cannot switch to joshsymonds"*"agent-ran user=nobody"* ]] ||
			die "init wrapper as another user must warn and start the agent anyway: $out"
		log "init-as-user.sh.tftpl: switches root to the workspace user with setpriv (CODER_AGENT_TOKEN kept); warns and carries on as any other user"
	else
		log "init-as-user.sh.tftpl: not root (or no setpriv/nobody): the root-to-user switch was not exercised"
	fi
	log "init-as-user.sh.tftpl: shellcheck clean; runs the agent script as the workspace user"
}

step_fmt
step_shared_checks
step_upload_contents
step_tofu_test
step_regressions
step_home_survives_update
step_start_script
step_stop_script
step_init_wrapper
log "all template checks passed"
