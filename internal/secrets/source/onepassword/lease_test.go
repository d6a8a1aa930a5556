package onepassword

import (
	"context"
	"testing"
)

// The lease lives in an item of its own beside the login's: made on first
// write, read afresh each time (another workspace's Client sees each
// write), and the login's item is never touched.
func TestOnePasswordServiceLease(t *testing.T) {
	if testing.Short() {
		t.Skip("loads the 1Password SDK's core")
	}
	f := startService(t)
	r := ref(t, "op://egoengine/Codex Auth/auth.json")
	a, b := serviceSource(t, f, 0), serviceSource(t, f, 0)
	a.onePass, b.onePass = true, true
	before, _ := f.svc.Item("egoengine", "Codex Auth")

	if rec, err := a.ReadLease(context.Background(), r); err != nil || rec != "" {
		t.Fatalf("no lease yet: %q, %v", rec, err)
	}
	if err := a.WriteLease(context.Background(), r, `{"holder":"a"}`); err != nil {
		t.Fatal(err)
	}
	if rec, err := b.ReadLease(context.Background(), r); err != nil || rec != `{"holder":"a"}` {
		t.Fatalf("b reads %q, %v", rec, err)
	}
	f.svc.ResetCounts()
	if err := b.WriteLease(context.Background(), r, `{"holder":"b"}`); err != nil {
		t.Fatal(err)
	}
	t.Logf("a write of an existing lease: %d requests: %v", f.svc.Total(), f.svc.Requests())
	f.svc.ResetCounts()
	if rec, err := a.ReadLease(context.Background(), r); err != nil || rec != `{"holder":"b"}` {
		t.Fatalf("a reads %q, %v after b's write", rec, err)
	}
	t.Logf("a read: %d requests: %v", f.svc.Total(), f.svc.Requests())

	// Current reads afresh, where the pass's own reads are kept: a change
	// made since the pass read the item shows.
	first := a.Fetch(context.Background(), []Ref{r})[0].Value
	edit(f, r, []byte(`{"changed":true}`))
	if v, err := a.Current(context.Background(), r); err != nil || string(v) != `{"changed":true}` {
		t.Fatalf("current after another writer: %q, %v", v, err)
	}
	edit(f, r, first)

	it, ok := f.svc.Item("egoengine", LeaseTitle("Codex Auth"))
	if !ok || it.Category != "003" {
		t.Fatalf("lease item %+v", it)
	}
	after, _ := f.svc.Item("egoengine", "Codex Auth")
	if len(after.Sections) != len(before.Sections) || string(after.Sections[0].Files[0].Content) != string(before.Sections[0].Files[0].Content) {
		t.Fatalf("the login's item changed")
	}
}
