// Package e2e runs egoengine end to end on a real Coder: a PostgreSQL
// cluster, a Coder server and its OpenTofu provisioner, a workspace from the
// test template in template/ whose agent runs the real egoagent start script
// and metadata from coder-templates/modules/egoengine-agent.
//
// It is a module of its own so that its needs stay out of egoagent's
// go.mod. Run it with scripts/e2e.sh (make e2e), which builds or reuses
// Coder, OpenTofu and egoagent and passes their paths in; see docs/e2e.md.
package e2e
