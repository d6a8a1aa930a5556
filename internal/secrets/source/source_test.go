package source

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veraticus/egoengine/internal/secrets/renew"
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

func TestDirReplace(t *testing.T) {
	d := dirSource(t)
	ctx := context.Background()
	token := Ref{Vault: "v", Item: "api", Field: "token"}
	p := filepath.Join(d.Root, "v/api/token")
	os.Chmod(p, 0o640)

	// Holds old: written, mode kept, nothing left beside it.
	if err := d.Replace(ctx, token, []byte("t1"), []byte("t2\x00")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "t2\x00" {
		t.Fatalf("after Replace: %q", b)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	if ents, _ := os.ReadDir(filepath.Dir(p)); len(ents) != 2 {
		t.Errorf("the folder holds %d entries, want 2 (token, sec)", len(ents))
	}

	// Holds something else: nothing written, the current value returned.
	err := d.Replace(ctx, token, []byte("t1"), []byte("t3"))
	var c *Conflict
	if !errors.As(err, &c) || string(c.Current) != "t2\x00" || c.Ref != token || strings.Contains(err.Error(), "t2") {
		t.Fatalf("stale old: %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "t2\x00" {
		t.Fatalf("a conflict wrote: %q", b)
	}

	// A Document, and a section field.
	if err := d.Replace(ctx, Ref{Vault: "v", Item: "Doc"}, []byte("document"), []byte("new doc")); err != nil {
		t.Fatal(err)
	}
	if err := d.Replace(ctx, Ref{Vault: "v", Item: "api", Section: "sec", Field: "field"}, []byte("f1"), nil); err != nil {
		t.Fatal(err)
	}
	res := d.Fetch(ctx, []Ref{{Vault: "v", Item: "Doc"}, {Vault: "v", Item: "api", Section: "sec", Field: "field"}})
	if string(res[0].Value) != "new doc" || res[1].Err != nil || len(res[1].Value) != 0 {
		t.Fatalf("read back: %+v", res)
	}

	if err := d.Replace(ctx, Ref{Vault: "v", Item: "api", Field: "nope"}, nil, []byte("x")); ClassOf(err) != ClassNotFound {
		t.Errorf("missing: %v", err)
	}
	// A Ref built from a title, not parsed, may lead out of the folder.
	outside := filepath.Join(d.Root, "..", "outside")
	os.WriteFile(outside, []byte("o"), 0o600)
	if err := d.Replace(ctx, Ref{Vault: "v", Item: "../../outside"}, []byte("o"), []byte("x")); err == nil {
		t.Error("a write out of the folder succeeded")
	}
	if b, _ := os.ReadFile(outside); string(b) != "o" {
		t.Errorf("a write out of the folder: %q", b)
	}
	link := filepath.Join(d.Root, "v/api/link")
	os.Symlink(p, link)
	if err := d.Replace(ctx, Ref{Vault: "v", Item: "api", Field: "link"}, []byte("t2\x00"), []byte("x")); ClassOf(err) != ClassOther {
		t.Errorf("a link: %v", err)
	}
	if fi, _ := os.Lstat(link); fi.Mode()&os.ModeSymlink == 0 {
		t.Error("the link was replaced")
	}

	if os.Geteuid() != 0 { // root writes anywhere
		os.Chmod(filepath.Dir(p), 0o500)
		defer os.Chmod(filepath.Dir(p), 0o700)
		err := d.Replace(ctx, token, []byte("t2\x00"), []byte("t4"))
		if ClassOf(err) != ClassReadOnly || !strings.Contains(err.Error(), "write_back = false") {
			t.Errorf("a read-only folder: %v", err)
		}
		if b, _ := os.ReadFile(p); string(b) != "t2\x00" {
			t.Fatalf("a refused write wrote: %q", b)
		}
	}
}

// readOnlySource is a Source that cannot write.
type readOnlySource struct{ Source }

// Serve answers replace requests with the served source's Writer: done, a
// conflict with the current bytes (an empty value too), an error with its
// class; and refuses them when the source cannot write.
func TestServeReplace(t *testing.T) {
	d := dirSource(t)
	os.WriteFile(filepath.Join(d.Root, "v/api/empty"), nil, 0o600)
	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	enc.Encode(wireRequest{Op: "replace", Ref: &Ref{Vault: "v", Item: "api", Field: "token"}, Old: []byte("t1"), Value: []byte{0, 255}})
	enc.Encode(wireRequest{Op: "replace", Ref: &Ref{Vault: "v", Item: "api", Field: "empty"}, Old: []byte("x"), Value: []byte("y")})
	enc.Encode(wireRequest{Op: "replace", Ref: &Ref{Vault: "v", Item: "api", Field: "nope"}, Value: []byte("y")})
	var out bytes.Buffer
	if err := Serve(context.Background(), &in, &out, d); err != nil {
		t.Fatal(err)
	}
	in.Reset()
	enc.Encode(wireRequest{Op: "replace", Ref: &Ref{Vault: "v", Item: "api", Field: "token"}, Old: []byte{0, 255}, Value: []byte("t1")})
	if err := Serve(context.Background(), &in, &out, readOnlySource{d}); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(&out)
	var r [4]wireResponse
	for i := range r {
		if err := dec.Decode(&r[i]); err != nil {
			t.Fatal(err)
		}
	}
	if r[0].Err != nil || r[0].Conflict != nil {
		t.Errorf("replace: %+v", r[0])
	}
	if b, _ := os.ReadFile(filepath.Join(d.Root, "v/api/token")); !bytes.Equal(b, []byte{0, 255}) {
		t.Errorf("replace wrote %q", b)
	}
	if r[1].Conflict == nil || r[1].Conflict.Current == nil || len(r[1].Conflict.Current) != 0 || r[1].Err != nil {
		t.Errorf("conflict on an empty file: %+v", r[1])
	}
	if r[2].Err == nil || r[2].Err.Class != ClassNotFound {
		t.Errorf("missing: %+v", r[2])
	}
	if r[3].Err == nil || !strings.Contains(r[3].Err.Msg, "cannot write") {
		t.Errorf("a source that cannot write: %+v", r[3])
	}
}

// asHelperEnv makes the test binary a helper serving the directory source
// at its value, so that Process is tested across a real pipe.
const asHelperEnv = "EGOAGENT_SOURCE_TEST_HELPER_ROOT"

// asVersionedHelperEnv does the same with versionedDir.
const asVersionedHelperEnv = "EGOAGENT_SOURCE_TEST_VERSIONED_ROOT"

func TestMain(m *testing.M) {
	serve := func(src Source) {
		if err := Serve(context.Background(), os.Stdin, os.Stdout, src); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	if root := os.Getenv(asHelperEnv); root != "" {
		serve(NewDir(root))
	}
	if root := os.Getenv(asVersionedHelperEnv); root != "" {
		serve(versionedDir{NewDir(root)})
	}
	if root := os.Getenv(asLeasingHelperEnv); root != "" {
		serve(&leasingDir{Dir: NewDir(root), leases: map[string]string{}})
	}
	os.Exit(m.Run())
}

// versionedDir is a directory source whose values' version is their
// content: a stand-in for 1Password's item versions.
type versionedDir struct{ *Dir }

func (v versionedDir) FetchKnown(ctx context.Context, refs []Ref, known Known) []Result {
	res := v.Fetch(ctx, refs)
	for i := range res {
		res[i].Version = "v:" + string(res[i].Value)
		if known[refs[i].String()] == res[i].Version {
			res[i].Value, res[i].Unchanged = nil, true
		}
	}
	return res
}

func (v versionedDir) DocumentsKnown(ctx context.Context, vault, prefix string, known Known) ([]Document, error) {
	docs, err := v.Documents(ctx, vault, prefix)
	for i := range docs {
		docs[i].Version = "v:" + string(docs[i].Content)
		if known[Ref{Vault: vault, Item: docs[i].Title}.String()] == docs[i].Version {
			docs[i].Content, docs[i].Unchanged = nil, true
		}
	}
	return docs, err
}

// What the caller has crosses the pipe to a Versioned helper, and versions
// and Unchanged come back; an older helper ignores it and sends values.
func TestProcessKnown(t *testing.T) {
	d := dirSource(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	token, doc := Ref{Vault: "v", Item: "api", Field: "token"}, Ref{Vault: "v", Item: "home/.ssh/config"}
	known := Known{token.String(): "v:t1", doc.String(): "v:old"}

	t.Setenv(asVersionedHelperEnv, d.Root)
	p := NewProcess(exe)
	defer p.Close()
	res := p.FetchKnown(ctx, []Ref{token}, known)
	if r := res[0]; !r.Unchanged || r.Value != nil || r.Version != "v:t1" || r.Err != nil {
		t.Fatalf("a known value: %+v", r)
	}
	docs, err := p.DocumentsKnown(ctx, "v", "home/", known)
	if err != nil || len(docs) != 2 {
		t.Fatalf("documents: %+v %v", docs, err)
	}
	for _, dd := range docs {
		if dd.Unchanged || dd.Version != "v:"+string(dd.Content) || len(dd.Content) == 0 {
			t.Fatalf("a Document at another version: %+v", dd)
		}
	}

	t.Setenv(asVersionedHelperEnv, "")
	t.Setenv(asHelperEnv, d.Root)
	old := NewProcess(exe)
	defer old.Close()
	if r := old.FetchKnown(ctx, []Ref{token}, known)[0]; r.Unchanged || string(r.Value) != "t1" || r.Version != "" {
		t.Fatalf("a helper that keeps no versions: %+v", r)
	}
}

// Process.Replace through a real helper: a *Conflict arrives whole (binary
// current bytes), classes arrive unchanged, and the helper's count of
// calls comes back.
func TestProcessReplace(t *testing.T) {
	d := dirSource(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(asHelperEnv, d.Root)
	p := NewProcess(exe)
	defer p.Close()
	ctx := context.Background()
	token := Ref{Vault: "v", Item: "api", Field: "token"}
	bin := []byte{0, 1, 255, '\n'}
	if err := p.Replace(ctx, token, []byte("t1"), bin); err != nil {
		t.Fatal(err)
	}
	err = p.Replace(ctx, token, []byte("t1"), []byte("t3"))
	var c *Conflict
	if !errors.As(err, &c) || !bytes.Equal(c.Current, bin) || c.Ref != token {
		t.Fatalf("conflict: %v", err)
	}
	if err := p.Replace(ctx, Ref{Vault: "v", Item: "nope", Field: "x"}, nil, []byte("y")); ClassOf(err) != ClassNotFound {
		t.Fatalf("missing: %v", err)
	}
	if res := p.Fetch(ctx, []Ref{token}); !bytes.Equal(res[0].Value, bin) {
		t.Fatalf("read back: %+v", res[0])
	}
	if p.Calls() != 4 {
		t.Errorf("calls = %d, want 4", p.Calls())
	}
}

const asLeasingHelperEnv = "EGOAGENT_SOURCE_TEST_LEASING_HELPER"

// leasingDir is a directory source that keeps leases for the life of its
// process: a stand-in for 1Password's lease items.
type leasingDir struct {
	*Dir
	leases map[string]string
}

func (l *leasingDir) Current(ctx context.Context, r Ref) ([]byte, error) {
	res := l.Fetch(ctx, []Ref{r})
	return res[0].Value, res[0].Err
}

func (l *leasingDir) RefreshLogin(_ context.Context, current []byte) ([]byte, error) {
	if string(current) == "spent" {
		return nil, &renew.CallError{Fate: renew.Spent, Msg: "token endpoint answered 401 refresh_token_reused"}
	}
	return append([]byte("renewed "), current...), nil
}

func (l *leasingDir) ReadLease(_ context.Context, r Ref) (string, error) {
	return l.leases[r.Item], nil
}

func (l *leasingDir) WriteLease(_ context.Context, r Ref, rec string) error {
	if rec == "refuse" {
		return &Error{Class: ClassReadOnly, Ref: r.String(), Msg: "read-only"}
	}
	l.leases[r.Item] = rec
	return nil
}

// Leases cross the pipe both ways, with their errors' classes; a helper
// whose source keeps none says so.
func TestProcessLease(t *testing.T) {
	d := dirSource(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r := Ref{Vault: "v", Item: "Codex Auth", Field: "auth.json"}
	t.Setenv(asLeasingHelperEnv, d.Root)
	p := NewProcess(exe)
	defer p.Close()
	if rec, err := p.ReadLease(ctx, r); rec != "" || err != nil {
		t.Fatalf("no lease yet: %q %v", rec, err)
	}
	if err := p.WriteLease(ctx, r, `{"holder":"a"}`); err != nil {
		t.Fatal(err)
	}
	if rec, err := p.ReadLease(ctx, r); rec != `{"holder":"a"}` || err != nil {
		t.Fatalf("read back %q %v", rec, err)
	}
	if v, err := p.Current(ctx, Ref{Vault: "v", Item: "api", Field: "token"}); string(v) != "t1" || err != nil {
		t.Fatalf("current: %q %v", v, err)
	}
	if v, err := p.RefreshLogin(ctx, []byte("login")); string(v) != "renewed login" || err != nil {
		t.Fatalf("refresh-login: %q %v", v, err)
	}
	var ce *renew.CallError
	if _, err := p.RefreshLogin(ctx, []byte("spent")); !errors.As(err, &ce) || ce.Fate != renew.Spent || !strings.Contains(ce.Msg, "refresh_token_reused") {
		t.Fatalf("a refused renewal must keep its fate across the pipe: %#v", err)
	}
	if err := p.WriteLease(ctx, r, "refuse"); ClassOf(err) != ClassReadOnly {
		t.Fatalf("a refused write: %v", err)
	}

	t.Setenv(asLeasingHelperEnv, "")
	t.Setenv(asHelperEnv, d.Root)
	plain := NewProcess(exe)
	defer plain.Close()
	if _, err := plain.ReadLease(ctx, r); err == nil || !strings.Contains(err.Error(), "keeps no leases") {
		t.Fatalf("a source without leases: %v", err)
	}
}
