package source

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseRef(t *testing.T) {
	for in, want := range map[string]Ref{
		"op://egoengine/Codex Auth/auth.json": {Vault: "egoengine", Item: "Codex Auth", Field: "auth.json"},
		"op://v/item/section/field":           {Vault: "v", Item: "item", Section: "section", Field: "field"},
		"op://v/My Document":                  {Vault: "v", Item: "My Document"},
	} {
		got, err := ParseRef(in)
		if err != nil || got != want || got.String() != in {
			t.Errorf("ParseRef(%q) = %+v, %v", in, got, err)
		}
	}
	if !(Ref{Vault: "v", Item: "d"}).IsDocument() {
		t.Error("a two-segment reference is a Document")
	}
	for in, msg := range map[string]string{
		"egoengine/x/y":  `must start with "op://"`,
		"op://v":         "has 1 segments",
		"op://v/a/b/c/d": "has 5 segments",
		"op://v//f":      "empty segment",
		"op://v/../f":    `".." segment`,
	} {
		if _, err := ParseRef(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseRef(%q): %v, want %q", in, err, msg)
		}
	}
}

func dirSource(t *testing.T) *Dir {
	root := t.TempDir()
	for p, v := range map[string]string{
		"v/api/token":            "t1",
		"v/api/sec/field":        "f1",
		"v/Doc":                  "document",
		"v/home/.ssh/config":     "Host *",
		"v/home/.config/x/y.txt": "y",
	} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o700)
		os.WriteFile(filepath.Join(root, p), []byte(v), 0o600)
	}
	return NewDir(root)
}

func TestDir(t *testing.T) {
	d := dirSource(t)
	res := d.Fetch(context.Background(), []Ref{
		{Vault: "v", Item: "api", Field: "token"},
		{Vault: "v", Item: "api", Section: "sec", Field: "field"},
		{Vault: "v", Item: "Doc"},
		{Vault: "v", Item: "api", Field: "missing"},
	})
	if string(res[0].Value) != "t1" || string(res[1].Value) != "f1" || string(res[2].Value) != "document" {
		t.Fatalf("%+v", res)
	}
	if ClassOf(res[3].Err) != ClassNotFound || !strings.Contains(res[3].Err.Error(), "op://v/api/missing") {
		t.Fatalf("missing: %v", res[3].Err)
	}
	docs, err := d.Documents(context.Background(), "v", "home/")
	if err != nil || len(docs) != 2 || docs[0].Title != "home/.config/x/y.txt" || string(docs[1].Content) != "Host *" {
		t.Fatalf("documents: %+v %v", docs, err)
	}
	if _, err := d.Documents(context.Background(), "nope", "home/"); ClassOf(err) != ClassNotFound {
		t.Fatalf("missing vault: %v", err)
	}
	if d.Calls() != 6 {
		t.Fatalf("calls = %d", d.Calls())
	}
}

// Serve is the helper's side of Process: requests in, answers out, values
// intact (binary too), errors with their class.
func TestServe(t *testing.T) {
	d := dirSource(t)
	binary := []byte{0, 1, 2, 255, '\n'}
	os.WriteFile(filepath.Join(d.Root, "v/api/bin"), binary, 0o600)
	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	enc.Encode(wireRequest{Op: "fetch", Refs: []Ref{{Vault: "v", Item: "api", Field: "bin"}, {Vault: "v", Item: "x", Field: "y"}}})
	enc.Encode(wireRequest{Op: "documents", Vault: "v", Prefix: "home/"})
	enc.Encode(wireRequest{Op: "bogus"})
	var out bytes.Buffer
	if err := Serve(context.Background(), &in, &out, d); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(&out)
	var r1, r2, r3 wireResponse
	dec.Decode(&r1)
	dec.Decode(&r2)
	dec.Decode(&r3)
	if !bytes.Equal(r1.Results[0].Value, binary) || r1.Results[1].Err.Class != ClassNotFound || r1.Calls != 2 {
		t.Fatalf("fetch: %+v", r1)
	}
	if len(r2.Documents) != 2 || r2.Calls != 3 {
		t.Fatalf("documents: %+v", r2)
	}
	if r3.Err == nil || !strings.Contains(r3.Err.Msg, "bogus") {
		t.Fatalf("bogus: %+v", r3)
	}
	if err := dec.Decode(&r3); err != io.EOF {
		t.Fatalf("more answers than requests: %v", err)
	}
}
