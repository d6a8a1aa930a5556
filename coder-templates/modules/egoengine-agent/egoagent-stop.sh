#!/bin/sh
# Workspace stop for egoengine, run by the Coder agent as a coder_script
# (run_on_stop) from the egoengine-agent module, when the agent is told to
# stop (SIGTERM: `docker stop`, or the container destroyed with a grace).
#
# egoagent's daemon lives in a session of its own (egoagent start detaches
# it), so no signal to the agent reaches it: this script sends it SIGTERM,
# on which it cancels or finishes its pass, records its state and logs
# "stopping", and waits up to 20 s for it to end. It reads the daemon's pid
# from ~/.local/state/egoagent/daemon.json and signals it only if that
# process is an `egoagent run`.
set -u

info="$HOME/.local/state/egoagent/daemon.json"
if [ ! -r "$info" ]; then
	echo "egoagent stop: no daemon recorded ($info)"
	exit 0
fi
pid=$(sed -n 's/.*"pid"[[:space:]]*:[[:space:]]*\([0-9][0-9]*\).*/\1/p' "$info" | head -n 1)
if [ -z "$pid" ] || [ ! -r "/proc/$pid/cmdline" ]; then
	echo "egoagent stop: the daemon is not running"
	exit 0
fi
# The process must be egoagent's daemon, not a process that took its pid.
case $(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") in
*egoagent*" run"*) ;;
*)
	echo "egoagent stop: pid $pid is not egoagent's daemon; nothing to stop"
	exit 0
	;;
esac
kill -TERM "$pid" 2>/dev/null || exit 0
i=0
while [ "$i" -lt 200 ]; do
	if [ ! -r "/proc/$pid/cmdline" ] || [ -z "$(tr -d '\0' 2>/dev/null <"/proc/$pid/cmdline")" ]; then
		echo "egoagent stop: daemon $pid stopped"
		exit 0
	fi
	sleep 0.1
	i=$((i + 1))
done
echo "egoagent stop: daemon $pid still runs 20 s after SIGTERM" >&2
exit 1
