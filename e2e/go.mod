module github.com/veraticus/egoengine/e2e

go 1.24.0

// The local stand-in for the 1Password service (a test-only package of the
// repository's module, internal/secrets/source/onepassword/opservice), which the
// workspace's egoagent signs in to. Only that package is imported; it needs
// nothing outside the standard library.
require github.com/veraticus/egoengine v0.0.0

// go-containerregistry's registry package: the OCI registry
// TestEnvbuilderWorkspace serves for envbuilder's cache and the images it
// pulls (the one `crane registry serve` runs, and the library envbuilder and
// its provider talk to registries with). In the test's process, it needs no
// build of a registry binary and no process to manage.
require github.com/google/go-containerregistry v0.20.6

replace github.com/veraticus/egoengine => ../
