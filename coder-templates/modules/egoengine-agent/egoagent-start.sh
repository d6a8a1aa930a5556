#!/bin/sh
# Workspace start for egoengine, run by the Coder agent as a coder_script
# (run_on_start, start_blocks_login) from the egoengine-agent module.
#
# 1. `egoagent image link-home` lines the persistent home volume up with the
#    Home Manager files of the image this workspace now runs.
# 2. `egoagent start` ingests every configured secret once, within its own
#    deadline, leaves its daemon running (output in its own log file) and
#    returns.
#
# Both steps write into a log file, which is then printed for Coder's startup
# log: a process that outlives this script can hold that file open, never the
# pipes Coder waits on.
#
# Exit status, and so what the dashboard shows:
#   egoagent start exit 1 (some secret not fresh): a warning, then exit 0. The
#     workspace is usable, `egoagent metadata` keeps showing which secret is
#     stale, and the daemon keeps retrying on its schedule.
#   exit 2 (bad configuration), any other failure, or a failed link-home: this
#     script fails with that code, so the start is marked as failed where the
#     owner sees it. Login is not held back by that: Coder lets users in once
#     the script has ended, whatever its code.
set -u

log_dir="${XDG_STATE_HOME:-$HOME/.local/state}/egoengine"
log="$log_dir/workspace-start.log"
mkdir -p "$log_dir"
: >"$log"

# step CMD...: runs one command with no stdin and its output in the log,
# and returns its exit code.
step() {
	printf '$ %s\n' "$*" >>"$log"
	"$@" </dev/null >>"$log" 2>&1
}

if ! command -v egoagent >/dev/null 2>&1; then
	echo "egoengine: egoagent is not on PATH ($PATH); this workspace image is not the egoengine image, or it is broken" >&2
	exit 127
fi

step egoagent image link-home
link_rc=$?
step egoagent start
start_rc=$?

cat "$log"

if [ "$link_rc" -ne 0 ]; then
	echo "egoengine: 'egoagent image link-home' failed (exit $link_rc): links in $HOME may point at files this image does not have; run it again by hand to see why" >&2
fi

case "$start_rc" in
0) ;;
1)
	echo "egoengine: warning: not every secret is fresh; the workspace is usable and egoagent keeps retrying. 'egoagent status' shows which secret and why." >&2
	start_rc=0
	;;
2)
	echo "egoengine: 'egoagent start' rejected its configuration (exit 2); fix it (see the message above), then run 'egoagent start'" >&2
	;;
*)
	echo "egoengine: 'egoagent start' failed (exit $start_rc); run 'egoagent start' by hand to retry" >&2
	;;
esac

if [ "$start_rc" -ne 0 ]; then
	exit "$start_rc"
fi
exit "$link_rc"
