#!/usr/bin/env bash
# The built-in demo, no 1Password account needed: a folder stands in for the
# vault, ./demo-home stands in for the workspace home.
#
# With --1password (make run-1password), the same values are served by a
# local stand-in for the 1Password service instead (on loopback, with a
# token minted for the run and never shown: see
# internal/secrets/source/onepassword/opservice/demo), and egoagent
# fetches them with kind = "1password", the real helper and the real SDK,
# into bin/demo-1password/home.
set -euo pipefail
cd "$(dirname "$0")/.."

onepassword=false
case ${1-} in
--1password) onepassword=true ;;
"") ;;
*)
	echo "usage: scripts/demo.sh [--1password]" >&2
	exit 2
	;;
esac

bin=$PWD/bin/egoagent
vault=$PWD/bin/demo-vault/egoengine
home=$PWD/demo-home
[[ -x $bin ]] || scripts/build.sh

# b64url encodes stdin as unpadded base64url, the JWT alphabet.
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
exp=$(($(date +%s) + 10 * 24 * 3600))
header=$(printf '{"alg":"none","typ":"JWT"}' | b64url)
payload=$(printf '{"exp":%d,"email":"demo@example.invalid"}' "$exp" | b64url)
jwt="$header.$payload.demo-signature"

rm -rf "$vault"
mkdir -p "$vault/Codex Auth" "$vault/GitHub" "$vault/home/.config/demo"
cat >"$vault/Codex Auth/auth.json" <<JSON
{"OPENAI_API_KEY":null,"tokens":{"id_token":"$jwt","access_token":"$jwt","refresh_token":"demo-refresh","account_id":"demo"},"last_refresh":"$(date -u +%Y-%m-%dT%H:%M:%SZ)"}
JSON
printf 'ghp_demo_not_a_real_token\n' >"$vault/GitHub/token"
printf 'hello from the demo vault\n' >"$vault/home/.config/demo/greeting.txt"
if $onepassword; then
	# The helper with the tag egoagent_optest, which sends the SDK's
	# connections to the stand-in; kept out of bin/ itself, where egoagent
	# would find it as its helper.
	home=$PWD/bin/demo-1password/home
	mkdir -p "$home" bin/optest
	CGO_ENABLED=0 go build -tags urfave_cli_no_docs,egoagent_optest -trimpath -ldflags '-s -w' -o bin/optest/egoagent-op ./cmd/egoagent-op
	go build -o bin/optest/demo-opservice ./internal/secrets/source/onepassword/opservice/demo
	bin/optest/demo-opservice -vault "$vault" -home "$home" -config "$PWD/demo/config-1password.toml" \
		-egoagent "$bin" -helper "$PWD/bin/optest/egoagent-op"
else
	mkdir -p "$home"

	export HOME=$home EGOAGENT_CONFIG=$PWD/demo/config.toml
	run() {
		printf '\n$ %s\n' "$*"
		"$@"
	}
	run "$bin" sync
	run "$bin" status
	run "$bin" metadata
fi
printf '\nFiles written under %s:\n' "$home"
find "$home" -path "$home/.local" -prune -o -type f -printf '  %m  %P\n' | sort
