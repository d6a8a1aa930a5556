#!/usr/bin/env bash
# The built-in demo, no 1Password account needed: a folder stands in for the
# vault, ./demo-home stands in for the workspace home.
set -euo pipefail
cd "$(dirname "$0")/.."

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
mkdir -p "$home"

export HOME=$home EGOAGENT_CONFIG=$PWD/demo/config.toml
run() {
	printf '\n$ %s\n' "$*"
	"$@"
}
run "$bin" sync
run "$bin" status
run "$bin" metadata
printf '\nFiles written under %s:\n' "$home"
find "$home" -path "$home/.local" -prune -o -type f -printf '  %m  %P\n' | sort
