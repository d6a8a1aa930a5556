#!/bin/sh
# The stand-ins of the e2e template (main.tf) for a Docker volume, the
# egoengine image and a workspace container, run by OpenTofu's local-exec:
#
#   workspace.sh create   the persistent home (the volume)
#   workspace.sh start    a fresh image root, then `coder agent` detached
#   workspace.sh stop     every process of this workspace ends (container stop)
#   workspace.sh delete   stop, then the folder goes (volume removed)
#
# Every process of a workspace carries EGOENGINE_E2E_WORKSPACE=<its folder> in
# its environment (children inherit it), which is how stop finds them all,
# however they detached: `egoagent start` leaves its daemon in a session of
# its own, as it must.
set -eu

die() {
	echo "workspace.sh: $*" >&2
	exit 1
}

: "${WS_DIR:?WS_DIR is not set}"
case $WS_DIR in
/*/*) ;;
*) die "WS_DIR must be an absolute folder below /, got '$WS_DIR'" ;;
esac

# pids_of_workspace: the processes whose environment names this workspace.
pids_of_workspace() {
	for p in /proc/[0-9]*; do
		# environ is NUL-separated; tr makes it lines for grep -x.
		if tr '\0' '\n' 2>/dev/null <"$p/environ" | grep -qxF "EGOENGINE_E2E_WORKSPACE=$WS_DIR"; then
			echo "${p#/proc/}"
		fi
	done
}

stop_all() {
	pids=$(pids_of_workspace)
	[ -n "$pids" ] || return 0
	# As `docker stop`: TERM, ten seconds, then KILL.
	# shellcheck disable=SC2086 # one pid per word
	kill -TERM $pids 2>/dev/null || true
	i=0
	while [ $i -lt 100 ]; do
		pids=$(pids_of_workspace)
		[ -n "$pids" ] || return 0
		sleep 0.1
		i=$((i + 1))
	done
	echo "workspace.sh: still running after 10s, killing: $pids" >&2
	# shellcheck disable=SC2086
	kill -KILL $pids 2>/dev/null || true
	i=0
	while [ $i -lt 50 ]; do
		[ -n "$(pids_of_workspace)" ] || return 0
		sleep 0.1
		i=$((i + 1))
	done
	die "processes of $WS_DIR survived SIGKILL: $(pids_of_workspace)"
}

# image_root: what the egoengine image provides and egoagent image link-home
# reads, rebuilt at each start as a new container would get it. Home
# Manager's files are a store path that the home's links point into.
image_root() {
	store=$WS_ROOT/nix/store
	files=$store/e2e00000000000000000000000000000-home-manager-files
	hmpath=$store/e2e00000000000000000000000000000-home-manager-path
	rm -rf "${WS_ROOT:?}/etc" "${WS_ROOT:?}/nix"
	mkdir -p "$files/.config/e2e" "$hmpath/bin" "$WS_ROOT/etc/egoengine"
	echo "linked by egoagent image link-home" >"$files/.config/e2e/hello"
	ln -s "/nix/store/${files##*/}" "$WS_ROOT/etc/egoengine/home-files"
	ln -s "/nix/store/${hmpath##*/}" "$WS_ROOT/etc/egoengine/home-path"
}

# The image has egoagent and its 1Password helper side by side on the PATH,
# and egoagent runs the egoagent-op beside its own executable. Here both are
# copies in the workspace's bin: egoagent from the build under test, and the
# helper built with the tag egoagent_optest, the one build that can reach
# the test's loopback service instead of 1Password. Copies, not links:
# egoagent looks beside the file it runs from, and beside the repository's
# bin/egoagent is the shipped helper, which would go to the Internet.
# The image also has egoagent at a fixed root, and this root is a folder of
# the host: a wrapper ahead of bin on the PATH gives link-home that root and
# otherwise execs the real binary.
install_bin() { # SOURCE NAME
	cp "$1" "$WS_DIR/bin/$2.new"
	chmod 755 "$WS_DIR/bin/$2.new"
	mv -f "$WS_DIR/bin/$2.new" "$WS_DIR/bin/$2"
}

binaries() {
	mkdir -p "$WS_DIR/bin" "$WS_DIR/wrap"
	install_bin "$EGOAGENT_BIN" egoagent
	install_bin "$EGOAGENT_OP_BIN" egoagent-op
	ln -sf "$CODER_BIN" "$WS_DIR/bin/coder"
	cat >"$WS_DIR/wrap/egoagent" <<WRAPPER
#!/bin/sh
# Stand-in for the image's /: link-home works on $WS_ROOT.
if [ "\${1:-}" = image ] && [ "\${2:-}" = link-home ]; then
	shift 2
	exec '$WS_DIR/bin/egoagent' image link-home --root '$WS_ROOT' "\$@"
fi
exec '$WS_DIR/bin/egoagent' "\$@"
WRAPPER
	chmod 755 "$WS_DIR/wrap/egoagent"
}

# The image's /etc/egoagent/config.toml, here in the home: the 1Password
# source, as in the image.
egoagent_config() {
	mkdir -p "$WS_HOME/.config/egoagent"
	cat >"$WS_HOME/.config/egoagent/config.toml" <<CONFIG
[source]
kind = "1password"

[schedule]
refresh = "$EGOAGENT_REFRESH"
jitter = "0s"

[[secret]]
name = "codex"
ref = "op://egoengine/Codex Auth/auth.json"
path = "~/.codex/auth.json"
check = "json"
CONFIG
}

# start_agent: a container's environment is what its definition gives it, not
# the provisioner's (which holds the server's TF_VAR_* and database URL).
# The shell keeps only these names; values never pass through arguments.
# A subshell, so that the unsets stay in it.
start_agent() (
	keep=" HOME USER LOGNAME SHELL PATH LANG TMPDIR CODER_AGENT_URL CODER_AGENT_TOKEN CODER_AGENT_AUTH"
	keep="$keep CODER_AGENT_LOG_DIR CODER_AGENT_SCRIPT_DATA_DIR CODER_AGENT_PPROF_ADDRESS CODER_AGENT_PROMETHEUS_ADDRESS"
	keep="$keep CODER_AGENT_DEBUG_ADDRESS OP_SERVICE_ACCOUNT_TOKEN EGOENGINE_E2E_RUN EGOENGINE_E2E_WORKSPACE"
	keep="$keep EGOAGENT_OPTEST_ADDR EGOAGENT_OPTEST_CERT "
	mkdir -p "$WS_DIR/logs" "$WS_DIR/tmp" "$WS_DIR/script-data"
	user=$(id -un)
	export HOME="$WS_HOME" USER="$user" LOGNAME="$user" SHELL=/bin/sh LANG=C.UTF-8
	export PATH="$WS_DIR/wrap:$WS_DIR/bin:/usr/local/bin:/usr/bin:/bin" TMPDIR="$WS_DIR/tmp"
	export CODER_AGENT_AUTH=token CODER_AGENT_LOG_DIR="$WS_DIR/logs" CODER_AGENT_SCRIPT_DATA_DIR="$WS_DIR/script-data"
	# Loopback ports of the kernel's choice: two agents never collide.
	export CODER_AGENT_PPROF_ADDRESS=127.0.0.1:0 CODER_AGENT_PROMETHEUS_ADDRESS=127.0.0.1:0 CODER_AGENT_DEBUG_ADDRESS=127.0.0.1:0
	export EGOENGINE_E2E_WORKSPACE="$WS_DIR"
	# Where the test build of egoagent-op finds 1Password: the test's
	# service on loopback, and the certificate to trust. The stand-in for
	# the route to 1Password; the shipped helper has no such setting.
	export EGOAGENT_OPTEST_ADDR="$OPTEST_ADDR" EGOAGENT_OPTEST_CERT="$OPTEST_CERT"
	if [ -z "${OP_SERVICE_ACCOUNT_TOKEN:-}" ]; then
		unset OP_SERVICE_ACCOUNT_TOKEN
	fi
	# Unset below; the shell's own (unexported) copies survive.
	agent_exe=$CODER_BIN
	logs=$WS_DIR/logs
	for name in $(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p'); do
		case $keep in
		*" $name "*) ;;
		*) unset "$name" 2>/dev/null || true ;;
		esac
	done
	# Its own session, no terminal, output in a file: nothing ties it to
	# OpenTofu, which returns at once.
	setsid "$agent_exe" agent </dev/null >>"$logs/agent.out" 2>&1 &
)

case "${1:-}" in
create)
	: "${WS_HOME:?}"
	mkdir -p "$WS_HOME"
	chmod 700 "$WS_DIR"
	;;
start)
	: "${WS_ROOT:?}" "${WS_HOME:?}" "${CODER_BIN:?}" "${EGOAGENT_BIN:?}" "${EGOAGENT_OP_BIN:?}" "${EGOAGENT_REFRESH:?}"
	: "${OPTEST_ADDR:?}" "${OPTEST_CERT:?}" "${CODER_AGENT_URL:?}" "${CODER_AGENT_TOKEN:?}"
	[ -x "$CODER_BIN" ] || die "coder_binary $CODER_BIN is not an executable file"
	[ -x "$EGOAGENT_BIN" ] || die "egoagent_binary $EGOAGENT_BIN is not an executable file"
	[ -x "$EGOAGENT_OP_BIN" ] || die "egoagent_op_binary $EGOAGENT_OP_BIN is not an executable file"
	[ -r "$OPTEST_CERT" ] || die "optest_cert $OPTEST_CERT is not a readable file"
	case $OPTEST_ADDR in
	127.*:* | "[::1]":*) ;;
	*) die "optest_addr must be a loopback host:port, got '$OPTEST_ADDR'" ;;
	esac
	[ -d "$WS_HOME" ] || die "the home $WS_HOME is missing: was terraform_data.home created?"
	# A start after a failed stop must not leave two agents.
	stop_all
	image_root
	binaries
	egoagent_config
	start_agent
	echo "workspace.sh: agent started for $WS_DIR"
	;;
stop)
	stop_all
	echo "workspace.sh: stopped $WS_DIR"
	;;
delete)
	stop_all
	rm -rf "$WS_DIR"
	echo "workspace.sh: deleted $WS_DIR"
	;;
*)
	die "usage: workspace.sh create|start|stop|delete (got '${1:-}')"
	;;
esac
