module github.com/veraticus/egoengine/e2e

go 1.24.0

// The local stand-in for the 1Password service (a test-only package of the
// repository's module, internal/secrets/source/onepassword/opservice), which the
// workspace's egoagent signs in to. Only that package is imported; it needs
// nothing outside the standard library.
require github.com/veraticus/egoengine v0.0.0

replace github.com/veraticus/egoengine => ../
