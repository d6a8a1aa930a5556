package onepassword

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/veraticus/egoengine/internal/secrets/source"
	"github.com/veraticus/egoengine/internal/secrets/source/onepassword/opservice"
)

// Replace through the real SDK against opservice: what a pass fetched is
// written back to a field, an attachment and a Document, only while 1Password
// still holds what was fetched.

// stored reads what the service holds for the three references these tests
// write: the Login's password, the Codex item's auth.json (and how many
// files it has), the Deploy Key Document.
func stored(t *testing.T, f *fixture, r Ref) []byte {
	t.Helper()
	it, ok := f.svc.Item("egoengine", r.Item)
	if !ok {
		t.Fatalf("%s: no item", r)
	}
	if r.IsDocument() {
		return it.Document.Content
	}
	var got [][]byte
	for _, sec := range it.Sections {
		for _, fl := range sec.Fields {
			if fl.Title == r.Field {
				got = append(got, []byte(fl.Value))
			}
		}
		for _, fi := range sec.Files {
			if fi.Name == r.Field {
				got = append(got, fi.Content)
			}
		}
	}
	if len(got) != 1 {
		t.Fatalf("%s: the service holds %d values", r, len(got))
	}
	return got[0]
}

// writeRefs are the three kinds of reference, with the value the fixture
// gives each.
func writeRefs(t *testing.T, f *fixture) map[string]struct {
	ref   Ref
	value []byte
} {
	return map[string]struct {
		ref   Ref
		value []byte
	}{
		"field":      {ref(t, "op://egoengine/Login/password"), []byte("hunter2")},
		"attachment": {ref(t, "op://egoengine/Codex Auth/auth.json"), []byte(f.codex)},
		"document":   {ref(t, "op://egoengine/Deploy Key"), f.binary},
	}
}

// edit changes what the service holds at r, as another writer would: the
// whole item again, with value at r.
func edit(f *fixture, r Ref, value []byte) {
	switch r.Item {
	case "Login":
		f.svc.PutItem("egoengine", opservice.Item{ID: f.loginID, Title: "Login",
			Fields:   []opservice.Field{{Title: "password", Value: string(value), Concealed: true}},
			Sections: []opservice.Section{{Title: "api", Fields: []opservice.Field{{ID: f.keyID, Title: "key", Value: "k-123"}}}}})
	case "Codex Auth":
		f.svc.PutItem("egoengine", opservice.Item{Title: "Codex Auth", Category: opservice.SecureNote,
			Sections: []opservice.Section{{Title: "", Files: []opservice.File{{Name: "auth.json", Content: value}}}}})
	default:
		f.svc.PutItem("egoengine", opservice.Item{Title: r.Item, Category: opservice.Document,
			Document: &opservice.File{Name: "id_ed25519", Content: value}})
	}
}

// TestOnePasswordServiceReplace: each kind of reference is replaced, the
// service holds the new value (an attachment once, not beside the old
// one), the same Client then fetches the new value and not what the pass
// read before, and Calls counts every request.
func TestOnePasswordServiceReplace(t *testing.T) {
	if testing.Short() {
		t.Skip("loads the 1Password SDK's core")
	}
	f := startService(t)
	// As in the helper (one pass, the items API), and with a Client kept
	// across passes, whose Fetch goes through ResolveAll.
	for _, onePass := range []bool{true, false} {
		for name, w := range writeRefs(t, f) {
			t.Run(fmt.Sprintf("onePass=%v/%s", onePass, name), func(t *testing.T) {
				o := serviceSource(t, f, 0)
				o.onePass = onePass
				if res := o.Fetch(context.Background(), []Ref{w.ref}); !bytes.Equal(res[0].Value, w.value) {
					t.Fatalf("fetch: %v", res[0].Err)
				}
				f.svc.ResetCounts()
				before := o.Calls()
				value := append([]byte("new \x00\xff "), name...)
				if name == "field" {
					value = []byte("new password ✓")
				}
				if err := o.Replace(context.Background(), w.ref, w.value, value); err != nil {
					t.Fatal(err)
				}
				if got := stored(t, f, w.ref); !bytes.Equal(got, value) {
					t.Fatalf("the service holds %q", got)
				}
				if o.Calls()-before != f.svc.Total() {
					t.Errorf("Calls() rose by %d, the service saw %d: %v", o.Calls()-before, f.svc.Total(), f.svc.Log())
				}
				t.Logf("%s: %d requests: %v", name, f.svc.Total(), f.svc.Requests())
				if res := o.Fetch(context.Background(), []Ref{w.ref}); !bytes.Equal(res[0].Value, value) {
					t.Errorf("the same Client fetched %q, %v after Replace", res[0].Value, res[0].Err)
				}
				edit(f, w.ref, w.value) // back for the next case
			})
		}
	}
	// A field holds text: bytes that are not UTF-8 are refused, not mangled.
	o := serviceSource(t, f, 0)
	r := ref(t, "op://egoengine/Login/password")
	if err := o.Replace(context.Background(), r, []byte("hunter2"), []byte{0xff}); source.ClassOf(err) != ClassOther || string(stored(t, f, r)) != "hunter2" {
		t.Errorf("non-UTF-8 into a field: %v", err)
	}
}

// TestOnePasswordServiceReplaceConflict: when 1Password holds something
// other than what the pass fetched, whenever the other writer came (after
// the fetch; between Replace's read and the SDK's own read; between the
// SDK's read and its write, refused by the service with HTTP 409 or item
// by item), Replace writes nothing and returns a *Conflict with what
// 1Password holds now.
func TestOnePasswordServiceReplaceConflict(t *testing.T) {
	if testing.Short() {
		t.Skip("loads the 1Password SDK's core")
	}
	f := startService(t)
	// when arranges for the other writer to put theirs at r.
	type when func(f *fixture, r Ref, theirs []byte)
	afterFetch := func(f *fixture, r Ref, theirs []byte) { edit(f, r, theirs) }
	beforeWrite := func(refusal opservice.Refusal) when {
		return func(f *fixture, r Ref, theirs []byte) {
			f.svc.RefuseWritesWith(refusal)
			f.svc.Before(opservice.RoutePatchItems, func() { edit(f, r, theirs) })
		}
	}
	// The request after Replace's own read of the item (the SDK's read
	// inside Put for a field; the file download for a file).
	beforeSDKRead := func(f *fixture, r Ref, theirs []byte) {
		route := opservice.RouteItem
		if r.Item != "Login" {
			route = opservice.RouteFile // files the service stored itself have no signing key
		}
		f.svc.Before(opservice.RouteItem, func() { f.svc.Before(route, func() { edit(f, r, theirs) }) })
	}
	for whenName, arrange := range map[string]when{
		"after the fetch":                        afterFetch,
		"before the SDK's read":                  beforeSDKRead,
		"before the write, HTTP 409":             beforeWrite(opservice.RefuseStatus),
		"before the write, refused item by item": beforeWrite(opservice.RefusePerItem),
	} {
		for name, w := range writeRefs(t, f) {
			t.Run(whenName+"/"+name, func(t *testing.T) {
				defer edit(f, w.ref, w.value)
				o := serviceSource(t, f, 0)
				if res := o.Fetch(context.Background(), []Ref{w.ref}); res[0].Err != nil {
					t.Fatal(res[0].Err)
				}
				theirs := []byte("theirs " + name)
				arrange(f, w.ref, theirs)
				f.svc.ResetCounts()
				err := o.Replace(context.Background(), w.ref, w.value, []byte("mine"))
				var c *source.Conflict
				if !errors.As(err, &c) || !bytes.Equal(c.Current, theirs) || c.Ref != w.ref {
					t.Fatalf("Replace: %v (%s)", err, source.ClassOf(err))
				}
				if strings.Contains(err.Error(), "theirs") {
					t.Errorf("the message holds the value: %q", err)
				}
				if got := stored(t, f, w.ref); !bytes.Equal(got, theirs) {
					t.Errorf("the service holds %q, want theirs", got)
				}
				t.Logf("%d requests: %v", f.svc.Total(), f.svc.Log())
			})
		}
	}
}

// TestOnePasswordServiceReplaceRace: another writer's change to another
// part of the item between the SDK's read and its write makes the service
// refuse the write; Replace reads again, finds its value still there, and
// writes on top of the other change, which survives.
func TestOnePasswordServiceReplaceRace(t *testing.T) {
	if testing.Short() {
		t.Skip("loads the 1Password SDK's core")
	}
	f := startService(t)
	o := serviceSource(t, f, 0)
	r := ref(t, "op://egoengine/Login/password")
	f.svc.Before(opservice.RoutePatchItems, func() {
		f.svc.PutItem("egoengine", opservice.Item{ID: f.loginID, Title: "Login",
			Fields:   []opservice.Field{{Title: "password", Value: "hunter2", Concealed: true}},
			Sections: []opservice.Section{{Title: "api", Fields: []opservice.Field{{ID: f.keyID, Title: "key", Value: "k-theirs"}}}}})
	})
	if err := o.Replace(context.Background(), r, []byte("hunter2"), []byte("mine")); err != nil {
		t.Fatal(err)
	}
	if n := f.svc.Requests()[opservice.RoutePatchItems]; n != 2 {
		t.Errorf("%d writes, want 2 (one refused)", n)
	}
	if got := stored(t, f, r); string(got) != "mine" {
		t.Errorf("password %q, want mine", got)
	}
	if got := stored(t, f, ref(t, "op://egoengine/Login/api/key")); string(got) != "k-theirs" {
		t.Errorf("the other writer's change was lost: key %q", got)
	}
}

// TestOnePasswordServiceReplaceReadOnly: a token that may read the vault
// but not write to it gets ClassReadOnly, with a message that says what to
// grant on which vault and holds neither value nor token; nothing is
// written, whichever way the service refuses.
func TestOnePasswordServiceReplaceReadOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("loads the 1Password SDK's core")
	}
	f := startService(t)
	f.svc.SetReadOnly("egoengine", true)
	for _, refusal := range []opservice.Refusal{opservice.RefuseStatus, opservice.RefusePerItem} {
		f.svc.RefuseWritesWith(refusal)
		for name, w := range writeRefs(t, f) {
			t.Run(fmt.Sprintf("refusal %d/%s", refusal, name), func(t *testing.T) {
				o := serviceSource(t, f, 0)
				err := o.Replace(context.Background(), w.ref, w.value, []byte("mine"))
				if source.ClassOf(err) != ClassReadOnly {
					t.Fatalf("Replace: %v (%s), want read-only", err, source.ClassOf(err))
				}
				msg := err.Error()
				for _, want := range []string{`vault "egoengine"`, "write access", "write_back = false"} {
					if !strings.Contains(msg, want) {
						t.Errorf("the message lacks %q: %s", want, msg)
					}
				}
				if strings.Contains(msg, "mine") || strings.Contains(msg, "hunter2") {
					t.Errorf("the message holds a value: %s", msg)
				}
				noSecretsIn(t, f, msg)
				if got := stored(t, f, w.ref); !bytes.Equal(got, w.value) {
					t.Errorf("the service holds %q", got)
				}
				t.Log(msg)
			})
		}
	}
}
