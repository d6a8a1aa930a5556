package onepassword

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	onepassword "github.com/1password/onepassword-sdk-go"
)

// sdkErrorTexts are error texts the SDK v0.4.1 produces, with the class each
// must map to. Sources: strings in the core (internal/wasm/core.wasm), the
// extism host's HTTP function (host.go), Go's net/http and net errors as
// they come through it, and the offline runs in client_test.go (marked
// "seen").
var sdkErrorTexts = []struct {
	text   string
	signIn bool // raised by the sign-in (NewClient) rather than a later call
	want   Class
}{
	// The token itself (all seen, except where noted).
	{"error initializing client: invalid user input: encountered the following errors: service account token was not specified", true, ClassMissingToken},
	{"error initializing client: invalid user input: encountered the following errors: service account token had invalid format", true, ClassInvalidToken},
	{"error initializing client: invalid service account token, please make sure you provide a valid service account token as parameter:  service account token base64 decoding failed, please create another token", true, ClassInvalidToken},
	{"error initializing client: invalid service account token, please make sure you provide a valid service account token as parameter:  service account deserialization failed, please create another token", true, ClassInvalidToken},
	{"prefix 'ops_' was expected but not found", true, ClassInvalidToken},                                                              // core string
	{"service account token is invalid: service account token did not contain device uuid", true, ClassInvalidToken},                   // core string
	{"invalid sign-in address", true, ClassInvalidToken},                                                                               // core string
	{"service account token's throttle token is invalid. please create a new service account token: expired", true, ClassInvalidToken}, // core string
	{"secret key was the wrong length", true, ClassInvalidToken},                                                                       // core string
	{"unrecognized secret key version", true, ClassInvalidToken},                                                                       // core string
	{"SRP authentication method unsupported", true, ClassInvalidToken},                                                                 // core string
	{"error initializing client: HTTP request to 'https://127.0.0.1:9/api/v3/auth/start?' is not allowed (recovered by wazero)\nwasm stack trace:\n\textism:host/env.http_request(i64,i64) i64", true, ClassInvalidToken},
	{"error initializing client: authentication error: bad service account token, please rotate it: invalid user auth parameters within token", true, ClassInvalidToken},
	{"error initializing client: authentication error: you are not authenticated", true, ClassInvalidToken},
	{"error initializing client: authentication error: you don't have the right permissions to access this resource", true, ClassInvalidToken},
	{"error initializing client: authentication error: resource not found", true, ClassInvalidToken},
	{"error initializing client: authentication error: bad request", true, ClassInvalidToken},
	{"failed to authenticate", true, ClassInvalidToken},                                        // core string
	{"account couldn't be found", true, ClassInvalidToken},                                     // core string
	{"Server hash was invalid, shared key mismatch", true, ClassInvalidToken},                  // core string
	{"secret key from lookup response did not match local sk", true, ClassInvalidToken},        // core string
	{"no session id found in auth lookup response", true, ClassInvalidToken},                   // core string
	{"you are not authenticated", false, ClassInvalidToken},                                    // a revoked token, later
	{"bad service account token, please rotate it: session expired", false, ClassInvalidToken}, // core strings

	// Rate limits.
	{"error initializing client: authentication error: rate limit exceeded", true, ClassRateLimited},
	{"rate limit exceeded", false, ClassRateLimited},
	{"unexpected status code in response: 429 Too Many Requests", false, ClassRateLimited},

	// Not found and no access, after sign-in.
	{"resource not found", false, ClassNotFound},
	{"file not found", false, ClassNotFound},
	{"you don't have the right permissions to access this resource", false, ClassNotFound},
	{"you don't have the right permissions to execute this request", false, ClassNotFound},
	{"error resolving secret reference: unable to retrieve vaults: you do not have the right permissions to perform this action: performing a vault operation", false, ClassInvalidToken}, // seen: HTTP 403 on the vault list

	// The network (seen, through the extism host's recovered panic).
	{"error initializing client: Post \"https://x.1password.com/api/v3/auth/start?\": dial tcp 127.0.0.1:39159: connect: connection refused (recovered by wazero)\nwasm stack trace:\n\t...", true, ClassUnreachable},
	{"error initializing client: Post \"https://x.1password.com/api/v3/auth/start?\": proxyconnect tcp: dial tcp 127.0.0.1:41065: connect: connection refused (recovered by wazero)", true, ClassUnreachable},
	{"error initializing client: Post \"https://x.1password.com/api/v3/auth/start?\": read tcp 127.0.0.1:55354->127.0.0.1:45625: read: connection reset by peer (recovered by wazero)", true, ClassUnreachable},
	{"error initializing client: Post \"https://x.1password.com/api/v3/auth/start?\": EOF (recovered by wazero)", true, ClassUnreachable},
	{"error initializing client: Post \"https://x.1password.com/api/v3/auth/start?\": unexpected EOF (recovered by wazero)", true, ClassUnreachable},
	{"error initializing client: Post \"https://x.1password.com/api/v3/auth/start?\": context deadline exceeded (recovered by wazero)", true, ClassUnreachable},
	{"error initializing client: Post \"https://x.1password.com/api/v3/auth/start?\": dial tcp: lookup x.1password.com on 127.0.0.53:53: no such host (recovered by wazero)", true, ClassUnreachable},
	{"Post \"https://x.1password.com/api/v3/auth/start?\": dial tcp: lookup x.1password.com on 127.0.0.53:53: server misbehaving", false, ClassUnreachable},
	{"Post \"https://x.1password.com/api/v3/auth/start?\": tls: failed to verify certificate: x509: certificate signed by unknown authority", true, ClassUnreachable},
	{"Post \"https://x.1password.com/api/v1/vaults\": dial tcp 203.0.113.1:443: i/o timeout", false, ClassUnreachable},
	{"Post \"https://x.1password.com/api/v1/vaults\": dial tcp 203.0.113.1:443: connect: network is unreachable", false, ClassUnreachable},
	{"Get \"https://x.1password.com/api/v1/vaults?attrs=combined-access\": stream error: stream ID 3; INTERNAL_ERROR; received from peer (recovered by wazero)", false, ClassUnreachable}, // Go's HTTP/2 client
	{"Get \"https://x.1password.com/api/v1/vaults\": http2: server sent GOAWAY and closed the connection; LastStreamID=1, ErrCode=NO_ERROR, debug=\"\"", false, ClassUnreachable},         // Go's HTTP/2 client
	{"request timeout", false, ClassUnreachable},                                          // core string (HTTP 408)
	{"error sending request", false, ClassUnreachable},                                    // core string
	{"request functionality injected by extism caused an issue", false, ClassUnreachable}, // core string

	// The service failing (seen: 500 and 503 answered to the sign-in).
	{"error initializing client: authentication error: internal server error", true, ClassUnreachable},
	{"error initializing client: authentication error: unexpected status code in response: 503 Service Unavailable", true, ClassUnreachable},
	{"unexpected status code in response: 502 Bad Gateway", false, ClassUnreachable},
	{"server error", false, ClassUnreachable}, // core string

	// Everything else.
	{"a conflict occurred on the server. this usually happens due to a race condition in requests", false, ClassOther},
	{"bad request", false, ClassOther},
	{"session expired", false, ClassOther},                          // the next call signs in again
	{"operation failed due to inactive session", false, ClassOther}, // core string
	{"an internal error occurred, please contact 1Password at support@1password.com or https://developer.1password.com/joinslack: x", false, ClassOther},
	{"message size exceeds the limit of 52428800 bytes, please contact 1Password at support@1password.com", false, ClassOther},
	{"an unknown error occurred", false, ClassOther},
}

func TestOnePasswordErrorClasses(t *testing.T) {
	o := newTestOnePassword(t, "ops_notused", time.Second)
	ctx := context.Background()
	for _, tc := range sdkErrorTexts {
		st := stageRead
		if tc.signIn {
			st = stageSignIn
		}
		e := o.classifyAs(ctx, ctx, errors.New(tc.text), st)
		if e.Class != tc.want {
			t.Errorf("%q (sign-in %v): class %s, want %s", tc.text, tc.signIn, e.Class, tc.want)
		}
		if strings.Contains(e.Msg, "wasm stack trace") || strings.Contains(e.Msg, "recovered by wazero") || strings.Contains(e.Msg, "\n") {
			t.Errorf("%q: message keeps SDK noise: %q", tc.text, e.Msg)
		}
		if e.Err == nil || strings.Contains(e.Err.Error(), "wasm stack trace") {
			t.Errorf("%q: wrapped error missing or unclean: %v", tc.text, e.Err)
		}
	}
}

// TestOnePasswordWriteErrors: a write's refusals (texts seen from SDK
// v0.4.1 against opservice, see TestRealSDKRefusedWrites) are told apart:
// no permission to write, the item changed meanwhile, and the rest as for
// reads.
func TestOnePasswordWriteErrors(t *testing.T) {
	o := newTestOnePassword(t, "ops_notused", time.Second)
	ctx := context.Background()
	for text, want := range map[string]Class{
		"you do not have the right permissions to perform this action: performing a vault operation":                             ClassReadOnly, // HTTP 403 to the PATCH
		"you do not have the right permissions to perform this action: not sufficient permissions for the item update operation": ClassReadOnly, // failedItems code 101
		"you don't have the right permissions to execute this request":                                                           ClassReadOnly, // core string
		"you are not authenticated":                           ClassInvalidToken,
		"rate limit exceeded":                                 ClassRateLimited,
		"unexpected status code in response: 502 Bad Gateway": ClassUnreachable,
	} {
		e := o.classifyWrite(ctx, ctx, errors.New(text))
		if e.Class != want || staleWrite(text) {
			t.Errorf("%q: %s (stale %v), want %s", text, e.Class, staleWrite(text), want)
		}
	}
	// Seen: the SDK's own check (Put; Attach, Delete, ReplaceDocument) and
	// the service's (HTTP 409; failedItems code 104).
	for _, text := range []string{
		"invalid user input: encountered the following errors: The submitted item is not up to date. Refetch the item and retry the request.",
		"invalid user input: encountered the following errors: cannot update items through other functions than Items.Put",
		"data conflict occurred on the server: performing a vault operation",
		"data conflict occurred on the server: race condition when updating items in the same vault",
	} {
		if !staleWrite(text) {
			t.Errorf("%q is not taken for a stale write", text)
		}
	}
}

func TestOnePasswordRateLimitType(t *testing.T) {
	// The SDK turns a core error named RateLimitExceeded into this type,
	// whatever its message says.
	o := newTestOnePassword(t, "ops_notused", time.Second)
	ctx := context.Background()
	err := fmt.Errorf("error initializing client: %w", &onepassword.RateLimitExceededError{})
	if e := o.classifyAs(ctx, ctx, err, stageSignIn); e.Class != ClassRateLimited {
		t.Errorf("RateLimitExceededError: class %s, want %s", e.Class, ClassRateLimited)
	}
}

func TestOnePasswordDeadlines(t *testing.T) {
	o := newTestOnePassword(t, "ops_notused", 250*time.Millisecond)
	parent := context.Background()
	expired, cancel := context.WithTimeout(parent, time.Nanosecond)
	defer cancel()
	<-expired.Done()
	e := o.classify(parent, expired, errors.New("Post \"https://x.1password.com/api/v1/vaults\": something odd"))
	if e.Class != ClassUnreachable || !strings.Contains(e.Msg, "did not answer within 250ms") {
		t.Errorf("request deadline: %s %q", e.Class, e.Msg)
	}
	cancelled, cancel2 := context.WithCancel(parent)
	cancel2()
	e = o.classify(cancelled, cancelled, errors.New("context canceled"))
	if e.Class != ClassUnreachable || !strings.Contains(e.Msg, "gave up") || !errors.Is(e, context.Canceled) {
		t.Errorf("cancelled pass: %s %q", e.Class, e.Msg)
	}
}

func TestOnePasswordScrubsToken(t *testing.T) {
	token, canaries := offlineToken(t, offlineSignIn)
	o := newTestOnePassword(t, token, time.Second)
	ctx := context.Background()
	for _, leak := range canaries {
		for _, st := range []stage{stageSignIn, stageRead, stageWrite} {
			// An SDK text that echoes the token or a part of it, in the
			// shapes the core's messages take.
			text := "invalid service account token, please make sure you provide a valid service account token as parameter: " + leak + " (recovered by wazero)\nwasm stack trace:\n\t" + leak
			e := o.classifyAs(ctx, ctx, errors.New(text), st)
			for _, s := range append(errorTexts(e), e.Msg) {
				for _, c := range canaries {
					if strings.Contains(s, c) {
						t.Fatalf("a secret from the token survived: %q", s)
					}
				}
			}
			if !strings.Contains(e.Msg, "[redacted]") {
				t.Errorf("no redaction mark in %q", e.Msg)
			}
		}
	}
	// The sign-in address stays: it helps with network errors and is no secret.
	e := o.classify(ctx, ctx, errors.New("Post \"https://"+offlineSignIn+"/api/v3/auth/start?\": EOF"))
	if !strings.Contains(e.Msg, offlineSignIn) {
		t.Errorf("sign-in address was scrubbed: %q", e.Msg)
	}
	// A long text is cut, after scrubbing.
	long := strings.Repeat("x", 2*maxDetail) + token
	e = o.classify(ctx, ctx, errors.New(long))
	if len(e.Msg) > maxDetail+300 || strings.Contains(e.Msg, token[:20]) {
		t.Errorf("long text not capped cleanly: %d bytes", len(e.Msg))
	}
}

func TestOnePasswordReferenceErrors(t *testing.T) {
	o := newTestOnePassword(t, "ops_notused", time.Second)
	r := Ref{Vault: "egoengine", Item: "Codex Auth", Section: "s", Field: "auth.json"}
	for _, tc := range []struct {
		err  onepassword.ResolveReferenceError
		want Class
		says string
	}{
		{onepassword.NewResolveReferenceErrorTypeVariantVaultNotFound(), ClassNotFound, `no vault named "egoengine"`},
		{onepassword.NewResolveReferenceErrorTypeVariantItemNotFound(), ClassNotFound, `no item named "Codex Auth"`},
		{onepassword.NewResolveReferenceErrorTypeVariantFieldNotFound(), ClassNotFound, `no field or file named "auth.json"`},
		{onepassword.NewResolveReferenceErrorTypeVariantNoMatchingSections(), ClassNotFound, `no section named "s"`},
		{onepassword.NewResolveReferenceErrorTypeVariantTooManyVaults(), ClassNotFound, "several vaults"},
		{onepassword.NewResolveReferenceErrorTypeVariantTooManyItems(), ClassNotFound, "several items"},
		{onepassword.NewResolveReferenceErrorTypeVariantTooManyMatchingFields(), ClassNotFound, "several fields"},
		{onepassword.NewResolveReferenceErrorTypeVariantParsing("invalid character in secret reference"), ClassOther, "invalid character"},
		{onepassword.NewResolveReferenceErrorTypeVariantUnableToParsePrivateKey(), ClassOther, "unableToParsePrivateKey"},
		{onepassword.ResolveReferenceError{Type: onepassword.ResolveReferenceErrorTypeVariantParsing}, ClassOther, "no detail"},
	} {
		e := o.referenceError(r, tc.err)
		if e.Class != tc.want || !strings.Contains(e.Msg, tc.says) || e.Ref != r.String() {
			t.Errorf("%s: got %s %q (ref %q), want %s saying %q", tc.err.Type, e.Class, e.Msg, e.Ref, tc.want, tc.says)
		}
	}
}

func TestOnePasswordSignInHosts(t *testing.T) {
	for addr, want := range map[string]bool{
		"my.1password.com":               true,
		"https://my.1password.eu/":       true,
		"team.1password.ca:443":          true,
		"MY.1PASSWORD.COM":               true,
		"1password.com":                  false, // the SDK allows subdomains only
		"evil1password.com":              false,
		"my.1password.com.evil.example":  false,
		"127.0.0.1:9":                    false,
		"":                               false,
		"https://x.b5local.com:8443/api": true,
	} {
		if got := sdkAllowsHost(signInHost(addr)); got != want {
			t.Errorf("%q: allowed %v, want %v", addr, got, want)
		}
	}
}

// A core that trapped while logging an error goes on working; any other
// trap means its memory is damaged and only a new process helps.
func TestCoreTrapsByWhatTheyMean(t *testing.T) {
	for _, tc := range []struct {
		text   string
		broken bool
	}{
		{"wasm error: unreachable\nwasm stack trace:\n\top_extism_core.wasm.invoke() i32", false},
		{"wasm error: out of bounds memory access\nwasm stack trace:\n\t...", true},
		{"wasm error: integer divide by zero", true},
	} {
		o := &Client{timeout: time.Second, scrub: &scrubber{}}
		o.client = &onepassword.Client{}
		e := o.classify(context.Background(), context.Background(), errors.New(tc.text))
		if e.Class != ClassOther {
			t.Errorf("%q: class %s, want other", tc.text, e.Class)
		}
		if got := errors.Is(e, ErrSDKCoreBroken); got != tc.broken {
			t.Errorf("%q: ErrSDKCoreBroken %v, want %v", tc.text, got, tc.broken)
		}
		if got := o.broken != nil || o.client == nil; got != tc.broken {
			t.Errorf("%q: client dropped or marked broken: %v, want %v", tc.text, got, tc.broken)
		}
	}
}
