// Package daemon keeps secrets fresh over weeks of uptime: it runs passes on
// the cron schedule, when a written file is deleted or rewritten, when the
// config changes, and when someone asks over the control socket.
//
// Each pass runs in the daemon's own process, through a Runner (egoagent's
// is the engine that `egoagent sync` uses), on the configuration the daemon
// loaded: a half-edited file never reaches a pass. 1Password is reached
// through the helper egoagent-op, which a pass starts and ends, so the
// SDK's memory is never the daemon's; after each pass the daemon hands back
// what the pass allocated and stays at a few MB.
//
// One goroutine owns all of the daemon's state (loop.go); everything else
// (the socket's connections, the watcher, the running pass) talks to it
// over channels. The files follow its concerns: loaded.go the configuration
// it runs on, queue.go the passes waiting and how they merge, loop.go the
// event loop, watch.go the file watching, report.go daemon.json, server.go
// the control socket's server side, client.go its callers (and starting a
// daemon for them), planner.go when passes are due.
package daemon
