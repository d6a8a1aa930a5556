module github.com/veraticus/egoengine/e2e

go 1.26.0

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

// zitadel/oidc's example OpenID provider (its provider and storage
// packages; the library is OpenID Foundation certified): the real provider
// TestComposeOIDC signs in through, in the test's process like the
// registry. golang.org/x/text for its users' language tag. It needs Go 1.26.
require (
	github.com/zitadel/oidc/v3 v3.52.0
	golang.org/x/text v0.43.0
)

require (
	github.com/bmatcuk/doublestar/v4 v4.10.4 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/containerd/stargz-snapshotter/estargz v0.16.3 // indirect
	github.com/docker/cli v28.2.2+incompatible // indirect
	github.com/docker/distribution v2.8.3+incompatible // indirect
	github.com/docker/docker-credential-helpers v0.9.3 // indirect
	github.com/go-chi/chi/v5 v5.5.0 // indirect
	github.com/go-jose/go-jose/v4 v4.1.9 // indirect
	github.com/go-logr/logr v1.4.4 // indirect
	github.com/go-logr/stdr v1.2.2 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/gorilla/securecookie v1.1.2 // indirect
	github.com/klauspost/compress v1.18.0 // indirect
	github.com/mitchellh/go-homedir v1.1.0 // indirect
	github.com/muhlemmer/gu v0.3.1 // indirect
	github.com/muhlemmer/httpforwarded v0.1.0 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	github.com/rs/cors v1.11.1 // indirect
	github.com/sirupsen/logrus v1.9.3 // indirect
	github.com/vbatts/tar-split v0.12.1 // indirect
	github.com/zitadel/schema v1.3.2 // indirect
	go.opentelemetry.io/auto/sdk v1.2.1 // indirect
	go.opentelemetry.io/otel v1.46.0 // indirect
	go.opentelemetry.io/otel/metric v1.46.0 // indirect
	go.opentelemetry.io/otel/trace v1.46.0 // indirect
	golang.org/x/oauth2 v0.38.0 // indirect
	golang.org/x/sync v0.24.0 // indirect
	golang.org/x/sys v0.40.0 // indirect
)

replace github.com/veraticus/egoengine => ../
