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
}

// Client is a Source backed by a 1Password service account, through the
// official Go SDK.
//
// The SDK client is created on the first Fetch or Documents, not here: the
// SDK runs a 9.5 MB WebAssembly core that costs seconds of CPU and about
// 160 MB of memory to start, and commands that only read state must not pay
// that. A failed sign-in is not remembered: the next call tries again, and
// the caller decides how soon that is.
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

var _ Source = (*Client)(nil)

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
		newClient: signIn,
	}, nil
}

// Calls reports how many requests this source has sent to 1Password: a
// sign-in counts as one, ResolveAll as one however many references it
// carries, and each listing, batched item read and file read as one.
func (o *Client) Calls() int { return int(o.calls.Load()) }

// Fetch resolves refs. Field references (text fields, and files attached to
// items) all go to 1Password in one Secrets().ResolveAll call. Two kinds of
// reference cannot be answered by it and go through the items API instead
// (Vaults().List, Items().List, Items().GetAll, Items().Files().Read):
//
//   - Document items (op://vault/item): the SDK's reference parser requires a
//     field, so "op://vault/item" is a parse error there.
//   - Files that are not text. Resolve returns a string and, per the SDK's
//     ResolveReferenceErrorTypeVariantUnsupportedFileFormat ("currently only
//     support text files"), refuses a file it cannot return as text. A text
//     file comes back as a JSON string, which carries valid UTF-8 unchanged,
//     so only the refused ones cost the extra requests. (Read from the SDK's
//     types and docs; no 1Password account is reachable where this was
//     written, so it is not checked against the service.)
//
// A reference does not say whether it names a field or a file, so trying
// ResolveAll first and falling back on that specific error is what keeps a
// pass to one request in the common case while still returning binary files
// byte for byte.
func (o *Client) Fetch(ctx context.Context, refs []Ref) []Result {
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
		o.readFiles(ctx, c, refs, viaItems, out)
	}
	return out
}

// Documents returns every Document item of vault whose title starts with
// prefix, sorted by title. It costs three requests plus one per Document
// (and the sign-in on first use): vault list, item list, one batched item
// read, then one file read each.
// Archived items are left out, as 1Password's own references leave them out.
// Titles shared by several Document items come back with an error and no
// content: picking one of them silently would make the mirrored file flip.
func (o *Client) Documents(ctx context.Context, vault, prefix string) ([]Document, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	where := "op://" + vault

	c, cerr := o.ready(ctx)
	if cerr != nil {
		return nil, withRef(cerr, where)
	}
	l := &locator{o: o, c: c}
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
			var ferr *Error
			doc.Content, ferr = l.readDocument(ctx, vaultID, got[ids[0]], ref)
			if ferr != nil {
				doc.Err = ferr
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
			Msg: TokenEnv + " is not set: give the workspace the service account token through the template's op_service_account_token variable"}
	}
	if err := o.probe(ctx); err != nil {
		return nil, err
	}
	return o.connect(ctx)
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
