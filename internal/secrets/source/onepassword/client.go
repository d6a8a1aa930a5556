package onepassword

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	onepassword "github.com/1password/onepassword-sdk-go"
)

// TokenEnv is the one place the 1Password service account token comes from.
// There is no flag, config key or file for it, so it never lands in process
// arguments, configuration or state.
const TokenEnv = "OP_SERVICE_ACCOUNT_TOKEN"

// giveToken says how a workspace gets the token, for the errors that need
// a new or first one: the owner's Coder user secret, which Coder puts in
// every process its agent starts, or the deployment's template variable
// (docs/operations.md compares the two).
const giveToken = "store the service account token as your Coder user secret (coder secret create op-token --env " + TokenEnv +
	", the token on stdin) and restart the workspace, or have the deployment set the template variable op_service_account_token"

// DefaultTimeout bounds each request to 1Password. The SDK sends
// its HTTP requests through http.DefaultClient, which has no timeout of its
// own: without a deadline a silent network would hang a pass forever.
const DefaultTimeout = 30 * time.Second

// integrationName is what 1Password's activity log shows for our requests.
const integrationName = "egoagent"

// Options configures New. It deliberately has no token
// field: nothing but the environment may hand egoagent the token.
type Options struct {
	Version string              // egoagent's version, sent to 1Password as integration info
	Getenv  func(string) string // reads the environment; nil means os.Getenv (tests pass their own)
	Timeout time.Duration       // per request to 1Password; 0 means DefaultTimeout
	// Requests, when set, reports the HTTP requests sent to 1Password so
	// far (see CountRequests); Calls then reports it.
	Requests func() int
	// OnePass says the Client serves a single pass and is then dropped, as
	// in the 1Password helper (one process per pass). It then spends as few
	// requests as it can: vaults and item lists are read once for the
	// Client's life and shared by Fetch and Documents, items are read once,
	// every reference goes through the items API (see Fetch), and a sign-in
	// that failed is not tried again.
	OnePass bool
}

// Client is a Source backed by a 1Password service account, through the
// official Go SDK.
//
// The SDK client is created on the first Fetch or Documents, not here: the
// SDK runs a 9.5 MB WebAssembly core that costs seconds of CPU and about
// 160 MB of memory to start, and commands that only read state must not pay
// that. A failed sign-in is not remembered (except in one-pass mode, where
// the pass is over): the next call tries again, and the caller decides how
// soon that is.
//
// Token problems do not make New fail. They are reported by Fetch
// (in every Result) and Documents, like any other fetch failure, so that the
// engine keeps the installed files and records why in status.
type Client struct {
	token   string
	signIn  string // the token's sign-in address, when the token decodes
	version string
	timeout time.Duration
	scrub   *scrubber
	calls   atomic.Int64
	// requests counts real HTTP requests, when the caller can (see
	// Options.Requests).
	requests func() int

	// onePass: see Options.OnePass. pass is then the one locator of the
	// Client's life, and signInErr the sign-in failure that ends the pass.
	onePass   bool
	pass      *locator
	signInErr *Error

	// broken is set once the SDK's core has failed for good in this
	// process (see ErrSDKCoreBroken); every later call returns it.
	broken *Error
	// noProbe turns off the reachability probe, for tests that want the
	// SDK itself to meet the network failure.
	noProbe bool

	// mu serialises use of the client. The SDK's core is single-threaded
	// and serialises every call anyway; holding mu also makes the lazy
	// sign-in happen once.
	mu     sync.Mutex
	client *onepassword.Client

	// newClient signs in. Tests replace it to drive the orchestration with
	// stand-in APIs; production uses signIn.
	newClient func(ctx context.Context, token, version string) (*onepassword.Client, error)
}

var (
	_ Source    = (*Client)(nil)
	_ Versioned = (*Client)(nil)
)

// New returns a 1Password source that takes its token from
// OP_SERVICE_ACCOUNT_TOKEN. It makes no request and does not load the SDK's
// core; see Client for why. The error is reserved for options that can
// never work; today there are none, so it is always nil.
func New(_ context.Context, opts Options) (*Client, error) {
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	// Surrounding whitespace is never part of a token (its alphabet is
	// base64), but a trailing newline easily sneaks in through a secret
	// store or a file; dropping it avoids a confusing "invalid token".
	token := strings.TrimSpace(getenv(TokenEnv))
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	version := opts.Version
	if version == "" {
		version = "unknown"
	}
	tok := parseToken(token)
	return &Client{
		token:     token,
		signIn:    tok.signIn,
		version:   version,
		timeout:   timeout,
		scrub:     &scrubber{secrets: tok.secrets},
		requests:  opts.Requests,
		onePass:   opts.OnePass,
		newClient: signIn,
	}, nil
}

// Calls reports how many requests this source has sent to 1Password.
//
// With Options.Requests (as in the 1Password helper) that is the real
// number of HTTP requests, which is what the rate limits count: a sign-in
// is four; Fetch's ResolveAll is one vault list, the keysets on first use,
// and per vault named one item list and one batched read, plus one download
// per file reference; each of the items API's listings, batched reads and
// file downloads is one more (a file read through the items API is two:
// the item, then the file).
//
// Without it, Calls counts calls into the SDK instead (a sign-in, a
// ResolveAll, a listing, a batched read, a file read: one each), which
// undercounts the requests several times over.
func (o *Client) Calls() int {
	if o.requests != nil {
		return o.requests()
	}
	return int(o.calls.Load())
}

// Fetch resolves refs.
//
// In one-pass mode (Options.OnePass, the helper) every reference goes
// through the items API with the Client's one locator: the vault list, each
// vault's item list and each item are read once for the pass, whatever
// Documents read before, and field values come from the items themselves.
// A pass then costs, in HTTP requests: 4 for the sign-in, 1 for the keysets,
// 1 vault list, per vault named 1 item list and 1 batched item read (one
// more batch when Documents read that vault first), nothing more per field,
// and 2 per file or Document (the SDK reads the item again, then the file).
//
// Otherwise, field references (text fields, and files attached to items)
// all go to 1Password in one Secrets().ResolveAll call, which itself costs
// a vault list, per vault an item list and a batched read, and a download
// per file. Two kinds of reference cannot be answered by it and go through
// the items API instead (Vaults().List, Items().List, Items().GetAll,
// Items().Files().Read), listing again:
//
//   - Document items (op://vault/item): the SDK's reference parser requires a
//     field, so "op://vault/item" is a parse error there.
//   - Files that are not text. Resolve returns a string and refuses a file
//     it cannot return as text (ResolveReferenceErrorTypeVariantUnsupportedFileFormat),
//     after it has downloaded it: such a file is downloaded twice.
//
// A reference does not say whether it names a field or a file, so that path
// tries ResolveAll first and falls back on that specific error.
func (o *Client) Fetch(ctx context.Context, refs []Ref) []Result {
	return o.FetchKnown(ctx, refs, nil)
}

// FetchKnown is Fetch, except that a file or Document whose item is still
// at the version known gives for its reference is not downloaded (two
// requests saved): its Result is Unchanged. Known matters for what goes
// through the items API: every reference in one-pass mode, Documents and
// non-text files otherwise.
func (o *Client) FetchKnown(ctx context.Context, refs []Ref, known Known) []Result {
	out := make([]Result, len(refs))
	for i, r := range refs {
		out[i].Ref = r
	}
	if len(refs) == 0 {
		return out
	}
	o.mu.Lock()
	defer o.mu.Unlock()

	c, err := o.ready(ctx)
	if err != nil {
		for i := range out {
			out[i].Err = forRef(err, refs[i])
		}
		return out
	}

	if o.onePass {
		all := make([]int, len(refs))
		for i := range refs {
			all[i] = i
		}
		o.readFiles(ctx, c, refs, all, out, known)
		return out
	}

	// Document items always go through the items API; field references
	// join them when ResolveAll refuses them as non-text files.
	var viaItems, fieldIdx []int
	var fields []string
	seen := map[string]bool{}
	for i, r := range refs {
		if r.IsDocument() {
			viaItems = append(viaItems, i)
			continue
		}
		fieldIdx = append(fieldIdx, i)
		if s := r.String(); !seen[s] {
			seen[s] = true
			fields = append(fields, s)
		}
	}

	if len(fields) > 0 {
		resp, err := o.resolveAll(ctx, c, fields)
		switch {
		case err != nil && stopsPass(err):
			// Every later request would fail the same way and spend quota.
			for i := range out {
				out[i].Err = forRef(err, refs[i])
			}
			return out
		case err != nil:
			for _, i := range fieldIdx {
				out[i].Err = forRef(err, refs[i])
			}
		default:
			for _, i := range fieldIdx {
				r := refs[i]
				ans, ok := answerFor(resp, r.String())
				switch {
				case !ok:
					out[i].Err = &Error{Class: ClassOther, Ref: r.String(),
						Msg: "1Password's batched answer had no entry for this reference; try again, and report it if it persists"}
				case ans.Error != nil && ans.Error.Type == onepassword.ResolveReferenceErrorTypeVariantUnsupportedFileFormat:
					viaItems = append(viaItems, i)
				case ans.Error != nil:
					out[i].Err = o.referenceError(r, *ans.Error)
				case ans.Content != nil:
					out[i].Value = []byte(ans.Content.Secret)
				default:
					out[i].Err = &Error{Class: ClassOther, Ref: r.String(),
						Msg: "1Password answered this reference with neither a value nor an error; try again, and report it if it persists"}
				}
			}
		}
	}

	if len(viaItems) > 0 {
		o.readFiles(ctx, c, refs, viaItems, out, known)
	}
	return out
}

// Documents returns every Document item of vault whose title starts with
// prefix, sorted by title. It costs, in HTTP requests, a vault list, an item
// list and one batched item read (none when no Document matches), then two
// per Document (the SDK reads the item again, then downloads the file); the
// sign-in (four) and the keysets (one) on first use. In one-pass mode the
// vault list and item list are shared with Fetch.
// Archived items are left out, as 1Password's own references leave them out.
// Titles shared by several Document items come back with an error and no
// content: picking one of them silently would make the mirrored file flip.
func (o *Client) Documents(ctx context.Context, vault, prefix string) ([]Document, error) {
	return o.DocumentsKnown(ctx, vault, prefix, nil)
}

// DocumentsKnown is Documents, except that a Document whose item is still
// at the version known gives for op://vault/title is not downloaded (two
// requests saved): it comes back Unchanged, without content.
func (o *Client) DocumentsKnown(ctx context.Context, vault, prefix string, known Known) ([]Document, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	where := "op://" + vault

	c, cerr := o.ready(ctx)
	if cerr != nil {
		return nil, withRef(cerr, where)
	}
	l := o.locator(c)
	vaultID, err := l.vault(ctx, vault)
	if err != nil {
		return nil, withRef(err, where)
	}
	overviews, err := l.items(ctx, vaultID)
	if err != nil {
		return nil, withRef(err, where)
	}

	byTitle := map[string][]string{} // title -> item IDs
	var titles []string
	for _, it := range overviews {
		if it.Category != onepassword.ItemCategoryDocument || !strings.HasPrefix(it.Title, prefix) {
			continue
		}
		if _, ok := byTitle[it.Title]; !ok {
			titles = append(titles, it.Title)
		}
		byTitle[it.Title] = append(byTitle[it.Title], it.ID)
	}
	sort.Strings(titles)
	docs := make([]Document, 0, len(titles))
	var ids []string
	for _, t := range titles {
		if len(byTitle[t]) == 1 {
			ids = append(ids, byTitle[t][0])
		}
	}
	got, err := l.getAll(ctx, vaultID, ids)
	if err != nil {
		return nil, withRef(err, where)
	}
	for _, t := range titles {
		ref := Ref{Vault: vault, Item: t}
		doc := Document{Title: t}
		switch ids := byTitle[t]; {
		case len(ids) > 1:
			doc.Err = &Error{Class: ClassNotFound, Ref: ref.String(),
				Msg: fmt.Sprintf("%d Document items in vault %q have this title; rename or archive all but one", len(ids), vault)}
		case l.fatal != nil:
			doc.Err = forRef(l.fatal, ref)
		default:
			rd := l.readRef(ctx, vaultID, got[ids[0]], ref, known)
			doc.Content, doc.Version, doc.Unchanged = rd.value, rd.version, rd.unchanged
			if rd.err != nil {
				doc.Err = rd.err
			}
		}
		docs = append(docs, doc)
	}
	return docs, nil
}

// ready returns a signed-in client for one Fetch or Documents call, after
// checking what can be checked without the SDK: the token is there, its
// sign-in address is one the SDK will talk to, and that address answers.
//
// The last two checks exist because of how SDK v0.4.1 fails: a network
// error inside a request is a Go panic in the SDK's HTTP host function,
// recovered by wazero, and each one leaves the WebAssembly core a little
// more damaged. After about twenty of them in one process (measured: the
// 23rd sign-in against a refused port returned "wasm error: out of bounds
// memory access", and every call after it too) the core is useless until
// the process exits. An answer with an HTTP error status does no harm (400
// sign-ins answered 401 in a row left the core working). So a pass that
// would fail on the network fails here instead, before the SDK is touched.
func (o *Client) ready(ctx context.Context) (*onepassword.Client, *Error) {
	if o.broken != nil {
		return nil, o.broken
	}
	if o.token == "" {
		return nil, &Error{Class: ClassMissingToken,
			Msg: TokenEnv + " is not set: " + giveToken}
	}
	if o.signInErr != nil {
		return nil, o.signInErr
	}
	if o.client == nil {
		// Once signed in, the network has been proven; a probe per call
		// would only add requests.
		if err := o.probe(ctx); err != nil {
			return nil, err
		}
	}
	c, err := o.connect(ctx)
	if err != nil && o.onePass && stopsPass(err) {
		// A second try in the same pass meets the same answer and
		// spends quota (a rejected token, a rate limit, a dead network).
		o.signInErr = err
	}
	return c, err
}

// locator returns the locator for one call: a fresh one, or in one-pass
// mode the Client's only one.
func (o *Client) locator(c *onepassword.Client) *locator {
	if !o.onePass {
		return &locator{o: o, c: c}
	}
	if o.pass == nil || o.pass.c != c {
		o.pass = &locator{o: o, c: c}
	}
	return o.pass
}

// connect returns the signed-in client, signing in on first use.
func (o *Client) connect(ctx context.Context) (*onepassword.Client, *Error) {
	if o.client != nil {
		return o.client, nil
	}
	// Loading the SDK's core takes seconds on a small machine. Do it before
	// the request deadline starts, so that the deadline measures 1Password
	// and not our CPU.
	warmCore(ctx)
	o.calls.Add(1)
	cctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	c, err := o.newClient(cctx, o.token, o.version)
	if err != nil {
		return nil, o.classifySignIn(ctx, cctx, err)
	}
	o.client = c
	return c, nil
}

// signIn creates the SDK client, which signs in to 1Password right away.
func signIn(ctx context.Context, token, version string) (*onepassword.Client, error) {
	return onepassword.NewClient(ctx,
		onepassword.WithServiceAccountToken(token),
		onepassword.WithIntegrationInfo(integrationName, version))
}

// warmCore makes the SDK compile its WebAssembly core. Validating a
// reference is the one public entry point that loads the shared core without
// signing in; it sends nothing over the network. Its result does not matter:
// if the core cannot load, the sign-in that follows reports it.
var warmCore = func(ctx context.Context) {
	_ = onepassword.Secrets.ValidateSecretReference(ctx, "op://vault/item/field")
}

func (o *Client) resolveAll(ctx context.Context, c *onepassword.Client, refs []string) (onepassword.ResolveAllResponse, *Error) {
	o.calls.Add(1)
	cctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	resp, err := c.Secrets().ResolveAll(cctx, refs)
	if err != nil {
		return resp, o.classify(ctx, cctx, err)
	}
	return resp, nil
}

// answerFor finds ref's entry in a ResolveAll answer. The SDK keys the map by
// the reference it was given; references are case-insensitive in 1Password,
// so a key that differs only in case is accepted when it is the only one.
func answerFor(resp onepassword.ResolveAllResponse, ref string) (onepassword.Response[onepassword.ResolvedReference, onepassword.ResolveReferenceError], bool) {
	if a, ok := resp.IndividualResponses[ref]; ok {
		return a, true
	}
	var found []string
	for k := range resp.IndividualResponses {
		if strings.EqualFold(k, ref) {
			found = append(found, k)
		}
	}
	if len(found) == 1 {
		return resp.IndividualResponses[found[0]], true
	}
	return onepassword.Response[onepassword.ResolvedReference, onepassword.ResolveReferenceError]{}, false
}
