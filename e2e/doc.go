// Package e2e runs egoengine end to end on a real Coder: a PostgreSQL
// cluster, a Coder server and its OpenTofu provisioner, a workspace from the
// test template in template/ whose agent runs the real egoagent start script
// and metadata from coder-templates/modules/egoengine-agent, and egoagent
// with its 1Password source, whose helper signs in with the real SDK to the
// local 1Password service of internal/secrets/source/onepassword/opservice, run by
// the test on loopback. TestDockerWorkspace runs the real
// coder-templates/egoengine-shell on a Docker Engine of the run's own
// (scripts/docker-harness.sh) with the stand-in image of
// scripts/standin-image.sh; TestEnvbuilderWorkspace runs
// coder-templates/egoengine-envbuilder there, with the real envbuilder
// building a devcontainer from a Git repository and a registry both served
// by the test; TestComposeStack runs compose/ on that engine.
//
// It is a module of its own so that its needs stay out of egoagent's
// go.mod; it requires the repository's module (replaced by ../) for that
// one test-only package, which needs only the standard library. Run it with
// scripts/e2e.sh (make e2e), which builds or reuses Coder, OpenTofu,
// egoagent and the test build of egoagent-op and passes their paths in; see
// docs/e2e.md.
package e2e
