// Package onepassword is the 1Password source: it fetches secrets with the
// official Go SDK, signed in with the service-account token from
// OP_SERVICE_ACCOUNT_TOKEN.
//
// Only the helper binary egoagent-op links this package. The SDK embeds a
// WebAssembly core and pulls in a large dependency tree whose package
// initialisation every process start pays for, and its core keeps about
// 160 MB once loaded; egoagent itself stays small and quick to start (its
// metadata command runs every few seconds) and reaches 1Password through a
// short-lived egoagent-op process (see source.Process).
package onepassword

import "github.com/veraticus/egoengine/internal/secrets/source"

// The source package's vocabulary under its own names: this package is a
// source like the others and reads as one.
type (
	Ref       = source.Ref
	Result    = source.Result
	Document  = source.Document
	Known     = source.Known
	Versioned = source.Versioned
	Source    = source.Source
	Error     = source.Error
	Conflict  = source.Conflict
	Class     = source.Class
)

const (
	ClassMissingToken = source.ClassMissingToken
	ClassInvalidToken = source.ClassInvalidToken
	ClassUnreachable  = source.ClassUnreachable
	ClassRateLimited  = source.ClassRateLimited
	ClassNotFound     = source.ClassNotFound
	ClassReadOnly     = source.ClassReadOnly
	ClassOther        = source.ClassOther
)
