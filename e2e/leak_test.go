package e2e

import (
	"strings"
	"testing"
)

// What a leak report shows must not leak: every secret is masked, and so is
// a secret the report's window cuts in two.
func TestLeakInMasks(t *testing.T) {
	token := "ops_" + strings.Repeat("eyJzZWNyZXRLZXkiOiJBMy1YWFhYWFgifQ", 3)
	inner := "A3-7QK2LM-9XJ4TT-PQ8RZ-2MN6V-WX3YB-K7D4C"
	text := []byte(`{"env":{"OP_SERVICE_ACCOUNT_TOKEN":"` + token + `"},"key":"` + inner + `"}`)
	where, found := leakIn("answer", text, token, strings.TrimPrefix(token, "ops_"), inner)
	if !found {
		t.Fatal("the token is in the text and was not found")
	}
	if !strings.Contains(where, `"OP_SERVICE_ACCOUNT_TOKEN":"<TOKEN>"`) {
		t.Errorf("the report does not say where: %s", where)
	}
	// The window ends inside inner: what remains of it must not show.
	for _, part := range []string{token[4:16], inner[:8], "7QK2LM"} {
		if strings.Contains(where, part) {
			t.Errorf("the report shows part of a secret (%q): %s", part, where)
		}
	}
	if _, found := leakIn("other", []byte("nothing here"), token, inner); found {
		t.Error("found a secret where there is none")
	}
}
