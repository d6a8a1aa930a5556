package onepassword

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	onepassword "github.com/1password/onepassword-sdk-go"
)

// ErrSDKCoreBroken is wrapped (errors.Is) by every error of a 1Password
// source whose SDK core has failed for good. SDK v0.4.1's WebAssembly core
// is shared by the whole process and cannot be reloaded through its API; it
// fails this way after repeated network errors inside requests. Only a new
// process gets a new core: a long-running caller should restart itself (or
// fetch in a child process) when it sees this.
var ErrSDKCoreBroken = errors.New("the 1Password SDK's core failed in this process")

// The SDK reports almost every failure as a plain string from its
// WebAssembly core (only rate limiting has a type of its own), and network
// failures as a Go error text that went through a recovered panic. So errors
// are classified by substrings of those texts. Every substring below was
// read from the SDK v0.4.1 core (internal/wasm/core.wasm), from the extism
// host's HTTP function, or from an offline run against the real SDK; the
// table test in errors_test.go holds them.

// cause is what went wrong, finer than Class, so that the message can say
// what to do.
type cause int

const (
	causeOther cause = iota
	causeTokenMissing
	causeTokenMalformed
	causeTokenRejected
	causeSessionEnded
	causeRateLimited
	causeNoAccess
	causeNotFound
	causeUnreachable
	causeServerFailed
	causeCoreTrap
	causeCoreBroken
	causeReadOnly
)

// sdkErrorRules is checked in order against the lowercased error text; the
// first rule with a matching needle wins. Token rules come first because
// the core's token errors can mention things (an address, a lookup) that
// the network rules would also match; "rejected" comes before "malformed"
// because the core wraps the reason a server gave ("bad service account
// token, please rotate it: ...") around texts that also occur locally.
var sdkErrorRules = []struct {
	cause   cause
	needles []string
}{
	{causeCoreTrap, []string{
		// The core traps this way whenever it logs an error (its logger
		// reaches for a JavaScript global that the WebAssembly host does
		// not have), for example on an answer that does not deserialize.
		// The call fails, but the core is sound: later calls in the same
		// process succeed (seen against a local service).
		"wasm error: unreachable",
	}},
	{causeCoreBroken, []string{
		// Any other trap, such as "wasm error: out of bounds memory
		// access" (seen after about twenty network errors in one process,
		// and on every call after it): the core's memory is damaged.
		"wasm error:",
	}},
	{causeTokenMissing, []string{
		// Only if an empty token got past New's own check.
		"service account token was not specified",
	}},
	{causeTokenRejected, []string{
		"bad service account token",
		"you are not authenticated",
		"failed to authenticate",
		"account couldn't be found",
		"server hash was invalid",
		"secret key from lookup response did not match",
		"no session id found in auth lookup response",
	}},
	{causeTokenMalformed, []string{
		"service account token had invalid format",
		"base64 decoding failed",
		"service account deserialization failed",
		"prefix 'ops_' was expected",
		"service account token is invalid",
		"did not contain device uuid",
		"invalid sign-in address",
		"invalid user auth parameters within token",
		"throttle token is invalid",
		"secret key was the wrong length",
		"unrecognized secret key version",
		"srp authentication method unsupported",
		"invalid service account token",
		// The sign-in address in the token is not a 1Password server: the
		// SDK's HTTP host refuses it before any traffic leaves.
		"is not allowed",
	}},
	{causeReadOnly, []string{
		// The core's text for a write the service refused item by item
		// (code 101 in the PATCH answer's failedItems; seen against a local
		// service): the token may not write to that vault.
		"not sufficient permissions for the item update operation",
	}},
	{causeTokenRejected, []string{
		// The core's text for an HTTP 403 answer to a request after the
		// sign-in (seen against a local service). A vault the service
		// account may not read is not listed at all, so this is about the
		// token itself: its permissions were taken away.
		"you do not have the right permissions to perform this action",
	}},
	{causeRateLimited, []string{
		"rate limit exceeded",
		"too many requests",
	}},
	{causeSessionEnded, []string{
		"session expired",
		"due to inactive session",
	}},
	{causeNoAccess, []string{
		"you don't have the right permissions",
	}},
	{causeNotFound, []string{
		"resource not found",
		"file not found",
		"not found",
	}},
	{causeUnreachable, []string{
		"context deadline exceeded",
		"dial tcp",
		"dial udp",
		"proxyconnect",
		"connection refused",
		"connection reset",
		"no such host",
		"server misbehaving",
		"temporary failure in name resolution",
		"network is unreachable",
		"no route to host",
		"host is down",
		"broken pipe",
		"i/o timeout",
		"timeout",
		"tls:",
		"x509:",
		"certificate",
		"unexpected eof",
		": eof",
		"error sending request",
		"request functionality injected by extism caused an issue",
		"server gave http response to https client",
		// HTTP/2, which the SDK's default client speaks to 1Password: a
		// stream the server or a proxy reset, or a connection it closed.
		"stream error:",
		"http2: server sent goaway",
		"http2: client connection lost",
		"http2: client connection force closed",
	}},
	{causeServerFailed, []string{
		"internal server error",
		"service unavailable",
		"bad gateway",
		"gateway timeout",
		"server error",
		"unexpected status code in response: 5",
	}},
}

// classifyText maps an SDK error text to a cause.
func classifyText(s string) cause {
	s = strings.ToLower(s)
	for _, r := range sdkErrorRules {
		for _, n := range r.needles {
			if strings.Contains(s, n) {
				return r.cause
			}
		}
	}
	return causeOther
}

// classify turns an SDK error into an *Error with an actionable message,
// free of the token. ctx is the caller's context, cctx the request's (with
// the per-request deadline).
func (o *Client) classify(ctx, cctx context.Context, err error) *Error {
	return o.classifyAs(ctx, cctx, err, stageRead)
}

// stage is which kind of request failed, which changes what a refusal
// means.
type stage int

const (
	stageRead stage = iota
	stageSignIn
	stageWrite
)

// classifySignIn is classify for the sign-in. There, the server's "not
// found", "no permission" and "bad request" (seen from the real core against
// a loopback server answering 404, 403 and 400 to /api/v3/auth/start) are
// about the service account itself, so they mean the token is no good.
func (o *Client) classifySignIn(ctx, cctx context.Context, err error) *Error {
	return o.classifyAs(ctx, cctx, err, stageSignIn)
}

// classifyWrite is classify for a write (Items().Put, Files().Attach,
// Delete, ReplaceDocument). Replace has just read the item with the same
// token, so a refusal for want of permissions (HTTP 403 to the write, seen
// against a local service as "you do not have the right permissions to
// perform this action: performing a vault operation") means the token may
// read the vault but not write to it, not that the token is no good.
func (o *Client) classifyWrite(ctx, cctx context.Context, err error) *Error {
	return o.classifyAs(ctx, cctx, err, stageWrite)
}

func (o *Client) classifyAs(ctx, cctx context.Context, err error, st stage) *Error {
	signIn := st == stageSignIn
	full := o.scrub.clean(err.Error())
	detail := capDetail(full)
	clean := errors.New(detail)

	var rl *onepassword.RateLimitExceededError
	c := classifyText(full)
	if errors.As(err, &rl) {
		c = causeRateLimited
	}
	switch {
	case ctx.Err() != nil:
		return &Error{Class: ClassUnreachable, Msg: "gave up waiting for 1Password: " + ctx.Err().Error(), Err: ctx.Err()}
	case cctx.Err() != nil && c != causeRateLimited:
		return &Error{Class: ClassUnreachable,
			Msg: fmt.Sprintf("1Password did not answer within %s (%s); check the workspace's network, DNS and proxy; the installed files stay as they are, and the next pass tries again", o.timeout, detail),
			Err: clean}
	}
	if c == causeCoreBroken {
		o.client = nil
		o.broken = &Error{Class: ClassOther, Err: fmt.Errorf("%w: %s", ErrSDKCoreBroken, detail),
			Msg: fmt.Sprintf("the 1Password SDK's core failed (%s), which SDK v0.4.1 does after repeated network errors in one process; restart egoagent (the installed files stay as they are)", detail)}
		return o.broken
	}
	if signIn && (c == causeNotFound || c == causeNoAccess || (c == causeOther && strings.Contains(strings.ToLower(full), "bad request"))) {
		c = causeTokenRejected
	}
	if st == stageWrite && (c == causeNoAccess || (c == causeTokenRejected && strings.Contains(strings.ToLower(full), "right permissions"))) {
		c = causeReadOnly
	}
	if c == causeSessionEnded {
		// Sign in again on the next call rather than reuse a dead session.
		o.client = nil
	}
	return &Error{Class: c.class(), Msg: c.message(detail), Err: clean}
}

func (c cause) class() Class {
	switch c {
	case causeTokenMissing:
		return ClassMissingToken
	case causeTokenMalformed, causeTokenRejected:
		return ClassInvalidToken
	case causeRateLimited:
		return ClassRateLimited
	case causeReadOnly:
		return ClassReadOnly
	case causeNoAccess, causeNotFound:
		// Both need a person to change 1Password or the configuration;
		// trying again sooner only spends quota.
		return ClassNotFound
	case causeUnreachable, causeServerFailed:
		return ClassUnreachable
	default:
		return ClassOther
	}
}

func (c cause) message(detail string) string {
	switch c {
	case causeTokenMissing:
		return fmt.Sprintf("%s is empty (%s): %s", TokenEnv, detail, giveToken)
	case causeTokenMalformed:
		return fmt.Sprintf("%s is not a usable service account token (%s); copy the whole token (it starts with ops_), or create a new one, and %s", TokenEnv, detail, giveToken)
	case causeTokenRejected:
		return fmt.Sprintf("1Password rejected the service account token in %s (%s); it may be revoked or expired: create a new token, then %s", TokenEnv, detail, giveToken)
	case causeSessionEnded:
		return fmt.Sprintf("the 1Password session ended (%s); egoagent signs in again on the next try", detail)
	case causeRateLimited:
		return fmt.Sprintf("1Password's rate limit for this service account is used up (%s); wait before trying again (reads are limited per hour, requests per day); the installed files stay as they are", detail)
	case causeNoAccess:
		return fmt.Sprintf("the service account may not read this (%s); grant it access to the vault in 1Password", detail)
	case causeReadOnly:
		return fmt.Sprintf("the service account may read this vault but not write to it (%s): give it write access to the vault in 1Password (Developer > Service Accounts), or set write_back = false for this secret", detail)
	case causeNotFound:
		return fmt.Sprintf("not found in 1Password (%s); check the vault, item and field names in the reference", detail)
	case causeUnreachable:
		return fmt.Sprintf("cannot reach 1Password (%s); check the workspace's network, DNS and proxy; the installed files stay as they are, and the next pass tries again", detail)
	case causeServerFailed:
		return fmt.Sprintf("1Password's service failed (%s); the installed files stay as they are, and the next pass tries again", detail)
	case causeCoreTrap:
		return fmt.Sprintf("the 1Password SDK could not make sense of 1Password's answer and stopped this request (%s); the next pass tries again; if it persists, report it with this message", detail)
	default:
		return fmt.Sprintf("1Password returned an error (%s); if it persists, report it with this message", detail)
	}
}

// referenceError maps one reference's error from ResolveAll.
func (o *Client) referenceError(r Ref, e onepassword.ResolveReferenceError) *Error {
	nf := func(msg string) *Error { return &Error{Class: ClassNotFound, Ref: r.String(), Msg: msg} }
	switch e.Type {
	case onepassword.ResolveReferenceErrorTypeVariantVaultNotFound:
		return nf(fmt.Sprintf("no vault named %q that this service account can read; check the name, or grant the service account access to the vault", r.Vault))
	case onepassword.ResolveReferenceErrorTypeVariantItemNotFound:
		return nf(fmt.Sprintf("no item named %q in vault %q; check the name, or create the item", r.Item, r.Vault))
	case onepassword.ResolveReferenceErrorTypeVariantFieldNotFound:
		return nf(fmt.Sprintf("item %q has no field or file named %q; check the name (a whole Document item is referenced as op://%s/%s)", r.Item, r.Field, r.Vault, r.Item))
	case onepassword.ResolveReferenceErrorTypeVariantNoMatchingSections:
		return nf(fmt.Sprintf("item %q has no section named %q; check the name", r.Item, r.Section))
	case onepassword.ResolveReferenceErrorTypeVariantTooManyVaults:
		return nf(fmt.Sprintf("several vaults are named %q; use the vault's ID in the reference, or rename one", r.Vault))
	case onepassword.ResolveReferenceErrorTypeVariantTooManyItems:
		return nf(fmt.Sprintf("several items in vault %q are named %q; use the item's ID in the reference, or rename or archive all but one", r.Vault, r.Item))
	case onepassword.ResolveReferenceErrorTypeVariantTooManyMatchingFields:
		return nf(fmt.Sprintf("several fields of item %q are named %q; add the section to the reference, use the field's ID, or rename one", r.Item, r.Field))
	case onepassword.ResolveReferenceErrorTypeVariantParsing:
		detail := capDetail(o.scrub.clean(safeMessage(e.Parsing)))
		return &Error{Class: ClassOther, Ref: r.String(),
			Msg: fmt.Sprintf("1Password cannot parse this reference (%s); names in references may hold only letters, digits, spaces, _, . and -, otherwise use IDs", detail)}
	default:
		return &Error{Class: ClassOther, Ref: r.String(),
			Msg: fmt.Sprintf("1Password could not resolve this reference (%s); check the field's type in 1Password", e.Type)}
	}
}

// safeMessage reads an SDK error variant's message. The SDK's accessors
// dereference without a nil check; a missing message must not crash a pass.
func safeMessage(get func() onepassword.ErrorMessage) (s string) {
	defer func() {
		if recover() != nil {
			s = "no detail"
		}
	}()
	return string(get())
}

// stopsPass reports whether every further request in this pass would fail
// the same way, so that sending them would only spend quota.
func stopsPass(e *Error) bool {
	switch e.Class {
	case ClassMissingToken, ClassInvalidToken, ClassUnreachable, ClassRateLimited:
		return true
	}
	return false
}

// withRef returns a copy of e about ref, so that one batch failure can be
// handed to many results without them sharing (and overwriting) one value.
func withRef(e *Error, ref string) *Error {
	c := *e
	c.Ref = ref
	return &c
}

func forRef(e *Error, r Ref) *Error { return withRef(e, r.String()) }

// maxDetail caps what an SDK error contributes to a message: status lines
// and metadata output have little room, and a long text is a long leak
// surface.
const maxDetail = 300

// scrubber removes the token, and the secrets inside it, from texts that
// came from the SDK before they go anywhere.
type scrubber struct {
	secrets []string
}

// tokenInfo is what New reads from the token without the SDK.
type tokenInfo struct {
	signIn  string   // sign-in address, "" when the token does not decode
	secrets []string // strings that must never be shown
}

// parseToken collects what must never be shown: the token as given, and the
// credential strings it carries (a service account token is "ops_" and
// unpadded base64 of a JSON object, as the SDK's core parses it). A core
// that echoed a decoded field would otherwise leak the secret key. It also
// reads the sign-in address, for the reachability probe.
func parseToken(token string) tokenInfo {
	var ti tokenInfo
	if token == "" {
		return ti
	}
	ti.secrets = append(ti.secrets, token)
	body, ok := strings.CutPrefix(token, "ops_")
	if !ok {
		return ti
	}
	ti.secrets = append(ti.secrets, body)
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.StdEncoding, base64.RawURLEncoding, base64.URLEncoding} {
		raw, err := enc.DecodeString(body)
		if err != nil {
			continue
		}
		var v map[string]any
		if json.Unmarshal(raw, &v) != nil {
			return ti
		}
		s := &scrubber{}
		s.collect(v, "")
		ti.secrets = append(ti.secrets, s.secrets...)
		// Probe only for a token the core is likely to accept: one in the
		// only encoding it decodes, with the credentials its parser needs.
		// Anything less, the SDK rejects without a network request, and
		// "malformed" is then the more useful report even when offline.
		complete := enc == base64.RawStdEncoding
		for _, k := range []string{"signInAddress", "email", "secretKey", "srpX", "muk", "userAuth"} {
			if _, ok := v[k]; !ok {
				complete = false
			}
		}
		if complete {
			ti.signIn, _ = v["signInAddress"].(string)
		}
		return ti
	}
	return ti
}

// collect adds the string leaves of a decoded token. The sign-in address is
// kept visible: it names the 1Password server, which helps with network
// errors and is not a secret. Short strings (method names, "mp") are not
// secrets and replacing them would mangle unrelated words.
func (s *scrubber) collect(v any, key string) {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			s.collect(x, k)
		}
	case []any:
		for _, x := range t {
			s.collect(x, key)
		}
	case string:
		if key != "signInAddress" && len(t) >= 8 {
			s.secrets = append(s.secrets, t)
		}
	}
}

// clean returns an SDK error text without the WebAssembly stack trace the
// core appends, without wrapper noise, on one line, with every secret
// replaced.
func (s *scrubber) clean(text string) string {
	text, _, _ = strings.Cut(text, "\nwasm stack trace")
	text = strings.TrimPrefix(text, "error initializing client: ")
	text = strings.ReplaceAll(text, " (recovered by wazero)", "")
	text = strings.Join(strings.Fields(text), " ")
	for _, sec := range s.secrets {
		text = strings.ReplaceAll(text, sec, "[redacted]")
	}
	if text == "" {
		text = "no detail"
	}
	return text
}

// capDetail shortens a cleaned text for a message. Cut after scrubbing, so
// no half of a secret can survive.
func capDetail(text string) string {
	if len(text) <= maxDetail {
		return text
	}
	return strings.ToValidUTF8(text[:maxDetail], "") + "..."
}
