package renew

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The token endpoint, as Codex 0.169.0 calls it. TokenURLEnv is Codex's own
// override, so that one variable points Codex and egoagent at the same
// place (the tests' local endpoint). The call itself is package endpoint's,
// which only the helper egoagent-op links: an HTTP client would add 2 MB
// and milliseconds to every start of egoagent, `metadata` every 30 s
// included.
const (
	DefaultTokenURL = "https://auth.openai.com/oauth/token"
	TokenURLEnv     = "CODEX_REFRESH_TOKEN_URL_OVERRIDE"
	ClientID        = "app_EMoamEEZ73f0CkXaXp7hrann"
)

// Fate says what a failed call did to the refresh token, which decides
// whether anyone may present it again.
type Fate string

const (
	Unsent  Fate = "unsent"  // the request never left: the token is as good as before
	Spent   Fate = "refused" // the endpoint refused the token for good (reused, expired, invalidated)
	Unknown Fate = "unknown" // sent, but no usable answer: the token may be spent
)

// RefreshToken returns the refresh token of current, an auth.json with
// ChatGPT tokens; the error is a *CallError (Unsent).
func RefreshToken(current []byte) (string, error) {
	doc, err := parseObject(current)
	if err != nil {
		return "", &CallError{Fate: Unsent, Msg: "auth.json: " + err.Error()}
	}
	tokens, err := parseObject(doc.get("tokens"))
	if err != nil {
		return "", &CallError{Fate: Unsent, Msg: "auth.json has no tokens object to renew"}
	}
	var rt string
	if json.Unmarshal(tokens.get("refresh_token"), &rt) != nil || rt == "" {
		return "", &CallError{Fate: Unsent, Msg: "auth.json has no refresh token to renew with"}
	}
	return rt, nil
}

// Renewed returns auth.json as Codex writes it after a renewal of its own:
// current with the new ID, access and refresh tokens, last_refresh set to
// now, everything else as it was, in Codex's layout.
func Renewed(current []byte, idToken, accessToken, refreshToken string, now time.Time) ([]byte, error) {
	doc, err := parseObject(current)
	if err != nil {
		return nil, err
	}
	tokens, err := parseObject(doc.get("tokens"))
	if err != nil {
		return nil, err
	}
	tokens.set("id_token", quote(idToken))
	tokens.set("access_token", quote(accessToken))
	tokens.set("refresh_token", quote(refreshToken))
	tokens.order(codexTokenKeys)
	doc.set("tokens", tokens.marshal())
	doc.set("last_refresh", quote(now.UTC().Format(time.RFC3339Nano)))
	if doc.get("OPENAI_API_KEY") == nil {
		doc.set("OPENAI_API_KEY", json.RawMessage("null"))
	}
	doc.order(codexKeys)
	var out bytes.Buffer
	if err := json.Indent(&out, doc.marshal(), "", "  "); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// CallError is a failed call to the token endpoint. Its message has the
// endpoint's status and error code, never a token.
type CallError struct {
	Fate Fate
	Msg  string
}

func (e *CallError) Error() string { return e.Msg }

// Refusal maps an answer other than 200 to a CallError. Codex treats the
// codes refresh_token_reused, _expired and _invalidated as the end of the
// token; so does egoagent, and a 400 or 401 of any kind as well, since a
// token that was not accepted cannot be known to be unspent. A 5xx or 429
// says nothing certain either.
func Refusal(status int, raw []byte) *CallError {
	var e struct {
		Error json.RawMessage `json:"error"`
	}
	code := ""
	if json.Unmarshal(raw, &e) == nil {
		var obj struct {
			Code string `json:"code"`
		}
		var s string
		if json.Unmarshal(e.Error, &obj) == nil && obj.Code != "" {
			code = obj.Code
		} else if json.Unmarshal(e.Error, &s) == nil {
			code = s
		}
	}
	code = printableCode(code)
	msg := fmt.Sprintf("token endpoint answered %d", status)
	if code != "" {
		msg += " " + code
	}
	switch {
	case status == 400 || status == 401:
		return &CallError{Fate: Spent, Msg: msg + ": the login cannot be renewed any more; sign in to Codex again (codex login) and upload the new auth.json"}
	default:
		return &CallError{Fate: Unknown, Msg: msg}
	}
}

// printableCode keeps an error code from the endpoint to a short word: it
// ends up in status, which a terminal shows.
func printableCode(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.' {
			return r
		}
		return -1
	}, s)
}

func quote(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

// Codex writes auth.json from its own structs (serde's pretty printer, two
// spaces, no final newline), so its keys come in this order whatever order
// it read them in. Keys Codex does not know are kept, after these: a newer
// Codex may have written them.
var (
	codexKeys      = []string{"auth_mode", "OPENAI_API_KEY", "tokens", "last_refresh"}
	codexTokenKeys = []string{"id_token", "access_token", "refresh_token", "account_id"}
)

// object is a JSON object that keeps its keys in order, so that a rewrite
// changes the values it means to and nothing else.
type object struct {
	keys []string
	vals map[string]json.RawMessage
}

func parseObject(b []byte) (*object, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	o := &object{vals: map[string]json.RawMessage{}}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		k, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		if _, dup := o.vals[k]; !dup {
			o.keys = append(o.keys, k)
		}
		o.vals[k] = v
	}
	return o, nil
}

func (o *object) get(k string) []byte { return o.vals[k] }

func (o *object) set(k string, v json.RawMessage) {
	if _, ok := o.vals[k]; !ok {
		o.keys = append(o.keys, k)
	}
	o.vals[k] = v
}

// order puts the keys of first that o has before all others, which keep
// their order.
func (o *object) order(first []string) {
	var keys []string
	for _, k := range first {
		if _, ok := o.vals[k]; ok {
			keys = append(keys, k)
		}
	}
	for _, k := range o.keys {
		if !slices.Contains(first, k) {
			keys = append(keys, k)
		}
	}
	o.keys = keys
}

func (o *object) marshal() []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(quote(k))
		b.WriteByte(':')
		b.Write(o.vals[k])
	}
	b.WriteByte('}')
	return b.Bytes()
}
