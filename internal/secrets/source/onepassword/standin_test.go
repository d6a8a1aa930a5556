package onepassword

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/veraticus/egoengine/internal/secrets/source"
	"strings"
	"sync"
	"testing"
	"time"

	onepassword "github.com/1password/onepassword-sdk-go"
)

// No 1Password account is reachable here, so what happens after a
// successful sign-in is tested against a stand-in for the service: it
// implements the SDK's own API interfaces (SecretsAPI, VaultsAPI, ItemsAPI,
// ItemsFilesAPI) with the SDK's own types, and is plugged into a real
// *onepassword.Client in place of the core-backed ones. It checks how the
// source batches, falls back and maps answers, not 1Password itself.

type standIn struct {
	mu       sync.Mutex
	requests []string // every API call, in order

	vaults  []onepassword.VaultOverview
	items   map[string][]onepassword.Item // by vault ID
	files   map[string][]byte             // by file ID
	secrets map[string]string             // by reference
	refErrs map[string]onepassword.ResolveReferenceError

	fail map[string]error // by method name: make that call fail
}

func (s *standIn) record(method string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, method)
	return s.fail[method]
}

func (s *standIn) count(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if r == method {
			n++
		}
	}
	return n
}

func (s *standIn) client() *onepassword.Client {
	return &onepassword.Client{
		SecretsAPI: standInSecrets{s: s},
		VaultsAPI:  standInVaults{s: s},
		ItemsAPI:   standInItems{s: s},
	}
}

// Each API embeds the SDK interface it stands in for: a method the source
// has no business calling panics on the nil interface.

type standInSecrets struct {
	onepassword.SecretsAPI
	s *standIn
}

func (a standInSecrets) ResolveAll(_ context.Context, refs []string) (onepassword.ResolveAllResponse, error) {
	if err := a.s.record("ResolveAll"); err != nil {
		return onepassword.ResolveAllResponse{}, err
	}
	out := onepassword.ResolveAllResponse{IndividualResponses: map[string]onepassword.Response[onepassword.ResolvedReference, onepassword.ResolveReferenceError]{}}
	for _, r := range refs {
		var ans onepassword.Response[onepassword.ResolvedReference, onepassword.ResolveReferenceError]
		if v, ok := a.s.secrets[r]; ok {
			ans.Content = &onepassword.ResolvedReference{Secret: v, ItemID: "i", VaultID: "v"}
		} else if e, ok := a.s.refErrs[r]; ok {
			ans.Error = &e
		} else {
			e := onepassword.NewResolveReferenceErrorTypeVariantItemNotFound()
			ans.Error = &e
		}
		out.IndividualResponses[r] = ans
	}
	return out, nil
}

type standInVaults struct {
	onepassword.VaultsAPI
	s *standIn
}

func (a standInVaults) List(context.Context, ...onepassword.VaultListParams) ([]onepassword.VaultOverview, error) {
	if err := a.s.record("Vaults.List"); err != nil {
		return nil, err
	}
	return a.s.vaults, nil
}

type standInItems struct {
	onepassword.ItemsAPI
	s *standIn
}

func (a standInItems) List(_ context.Context, vaultID string, filters ...onepassword.ItemListFilter) ([]onepassword.ItemOverview, error) {
	if err := a.s.record("Items.List"); err != nil {
		return nil, err
	}
	activeOnly := false
	for _, f := range filters {
		if st := f.ByState(); st != nil && st.Active && !st.Archived {
			activeOnly = true
		}
	}
	var out []onepassword.ItemOverview
	for _, it := range a.s.items[vaultID] {
		state := onepassword.ItemStateActive
		if strings.HasPrefix(it.Notes, "archived") {
			state = onepassword.ItemStateArchived
		}
		if activeOnly && state != onepassword.ItemStateActive {
			continue
		}
		out = append(out, onepassword.ItemOverview{ID: it.ID, Title: it.Title, Category: it.Category, VaultID: vaultID, State: state})
	}
	return out, nil
}

func (a standInItems) GetAll(_ context.Context, vaultID string, ids []string) (onepassword.ItemsGetAllResponse, error) {
	if err := a.s.record("Items.GetAll"); err != nil {
		return onepassword.ItemsGetAllResponse{}, err
	}
	var out onepassword.ItemsGetAllResponse
	for _, id := range ids {
		var ans onepassword.Response[onepassword.Item, onepassword.ItemsGetAllError]
		for _, it := range a.s.items[vaultID] {
			if it.ID == id {
				it := it
				ans.Content = &it
			}
		}
		if ans.Content == nil {
			e := onepassword.NewItemsGetAllErrorTypeVariantItemNotFound()
			ans.Error = &e
		}
		out.IndividualResponses = append(out.IndividualResponses, ans)
	}
	return out, nil
}

func (a standInItems) Files() onepassword.ItemsFilesAPI { return standInFiles{s: a.s} }

type standInFiles struct {
	onepassword.ItemsFilesAPI
	s *standIn
}

func (a standInFiles) Read(_ context.Context, _, _ string, attr onepassword.FileAttributes) ([]byte, error) {
	if err := a.s.record("Files.Read"); err != nil {
		return nil, err
	}
	b, ok := a.s.files[attr.ID]
	if !ok {
		return nil, errors.New("file not found")
	}
	return append([]byte(nil), b...), nil
}

// binaryConfig is a file Resolve cannot return as text: NUL bytes and
// invalid UTF-8.
var binaryConfig = []byte{0x00, 0xff, 0xfe, 'k', 'e', 'y', 0x00, 0xc3}

func newStandIn() *standIn {
	docFile := func(id, name string, n int) *onepassword.FileAttributes {
		return &onepassword.FileAttributes{ID: id, Name: name, Size: uint32(n)}
	}
	return &standIn{
		vaults: []onepassword.VaultOverview{{ID: "v1", Title: "egoengine"}, {ID: "v2", Title: "other"}},
		items: map[string][]onepassword.Item{
			"v1": {
				{ID: "codex", Title: "Codex Auth", Category: onepassword.ItemCategorySecureNote, VaultID: "v1",
					Sections: []onepassword.ItemSection{{ID: "sec1", Title: "keys"}},
					Files: []onepassword.ItemFile{
						{Attributes: onepassword.FileAttributes{ID: "f-auth", Name: "auth.json"}, SectionID: "sec1", FieldID: "fld1"},
						{Attributes: onepassword.FileAttributes{ID: "f-bin", Name: "id.bin"}, SectionID: "sec1", FieldID: "fld2"},
					}},
				{ID: "doc-ssh", Title: "home/.ssh/config", Category: onepassword.ItemCategoryDocument, VaultID: "v1",
					Document: docFile("f-ssh", "config", 20)},
				{ID: "doc-git", Title: "home/.gitconfig", Category: onepassword.ItemCategoryDocument, VaultID: "v1",
					Document: docFile("f-git", ".gitconfig", 10)},
				{ID: "doc-dup1", Title: "home/.dup", Category: onepassword.ItemCategoryDocument, VaultID: "v1", Document: docFile("f-dup1", "a", 1)},
				{ID: "doc-dup2", Title: "home/.dup", Category: onepassword.ItemCategoryDocument, VaultID: "v1", Document: docFile("f-dup2", "b", 1)},
				{ID: "doc-old", Title: "home/.old", Category: onepassword.ItemCategoryDocument, VaultID: "v1", Notes: "archived", Document: docFile("f-old", "o", 1)},
				{ID: "doc-other", Title: "work/notes", Category: onepassword.ItemCategoryDocument, VaultID: "v1", Document: docFile("f-notes", "n", 1)},
				{ID: "note-home", Title: "home/.not-a-document", Category: onepassword.ItemCategorySecureNote, VaultID: "v1"},
			},
		},
		files: map[string][]byte{
			"f-bin":   binaryConfig,
			"f-ssh":   []byte("Host *\n  ForwardAgent no\n"),
			"f-git":   []byte("[user]\n\tname = x\n"),
			"f-dup1":  []byte("1"),
			"f-dup2":  []byte("2"),
			"f-old":   []byte("old"),
			"f-notes": []byte("n"),
		},
		secrets: map[string]string{
			"op://egoengine/Codex Auth/auth.json": `{"OPENAI_API_KEY":"sk-canary"}`,
			"op://egoengine/Login/password":       "hunter2-canary",
		},
		refErrs: map[string]onepassword.ResolveReferenceError{
			"op://egoengine/Codex Auth/keys/id.bin": onepassword.NewResolveReferenceErrorTypeVariantUnsupportedFileFormat(),
			"op://egoengine/Codex Auth/id.bin":      onepassword.NewResolveReferenceErrorTypeVariantUnsupportedFileFormat(),
			"op://egoengine/Login/nope":             onepassword.NewResolveReferenceErrorTypeVariantFieldNotFound(),
		},
		fail: map[string]error{},
	}
}

// standInSource returns a source whose sign-in yields a client backed by s.
func standInSource(t *testing.T, s *standIn) *Client {
	t.Helper()
	o := newTestOnePassword(t, "ops_standin", 5*time.Second)
	o.newClient = func(context.Context, string, string) (*onepassword.Client, error) {
		if err := s.record("SignIn"); err != nil {
			return nil, err
		}
		return s.client(), nil
	}
	// The stand-in has no core to load; keep these tests free of it.
	old := warmCore
	warmCore = func(context.Context) {}
	t.Cleanup(func() { warmCore = old })
	return o
}

func mustParse(t *testing.T, refs ...string) []Ref {
	t.Helper()
	var out []Ref
	for _, s := range refs {
		r, err := source.ParseRef(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func TestOnePasswordFetchBatches(t *testing.T) {
	s := newStandIn()
	o := standInSource(t, s)
	refs := mustParse(t,
		"op://egoengine/Codex Auth/auth.json",
		"op://egoengine/Login/password",
		"op://egoengine/Codex Auth/auth.json", // the same again: asked for once
		"op://egoengine/Login/nope",
		"op://egoengine/Missing/field",
	)
	res := o.Fetch(context.Background(), refs)
	if got := s.count("ResolveAll"); got != 1 {
		t.Fatalf("ResolveAll called %d times, want 1", got)
	}
	if string(res[0].Value) != `{"OPENAI_API_KEY":"sk-canary"}` || string(res[2].Value) != string(res[0].Value) || string(res[1].Value) != "hunter2-canary" {
		t.Errorf("values: %q %q %q", res[0].Value, res[1].Value, res[2].Value)
	}
	for i, want := range []Class{"", "", "", ClassNotFound, ClassNotFound} {
		if want == "" {
			if res[i].Err != nil {
				t.Errorf("result %d: %v", i, res[i].Err)
			}
			continue
		}
		if source.ClassOf(res[i].Err) != want || res[i].Value != nil {
			t.Errorf("result %d: %v (value %q), want class %s", i, res[i].Err, res[i].Value, want)
		}
	}
	if !strings.Contains(res[3].Err.Error(), `no field or file named "nope"`) {
		t.Errorf("field error: %v", res[3].Err)
	}
	// Fields only: no items API at all. Sign-in plus one batch.
	if o.Calls() != 2 || len(s.requests) != 2 {
		t.Errorf("Calls() = %d, requests %v; want sign-in and ResolveAll only", o.Calls(), s.requests)
	}

	// A second pass reuses the session.
	o.Fetch(context.Background(), refs[:1])
	if s.count("SignIn") != 1 || o.Calls() != 3 {
		t.Errorf("second pass: sign-ins %d, Calls() %d; want 1 and 3", s.count("SignIn"), o.Calls())
	}
}

func TestOnePasswordFetchFilesAndDocuments(t *testing.T) {
	s := newStandIn()
	o := standInSource(t, s)
	refs := mustParse(t,
		"op://egoengine/Codex Auth/keys/id.bin", // binary attachment in a section: Resolve refuses it
		"op://egoengine/Codex Auth/id.bin",      // the same file, no section given
		"op://egoengine/Codex Auth",             // placeholder, replaced below
		"op://egoengine/Codex Auth",             // an item that is not a Document
		"op://egoengine/Login/password",
		"op://nowhere/Codex Auth",
	)
	// Document titles may hold slashes, which no op:// string can carry;
	// the engine builds such Refs directly, as here.
	refs[2] = Ref{Vault: "egoengine", Item: "home/.ssh/config"}
	res := o.Fetch(context.Background(), refs)
	if !bytes.Equal(res[0].Value, binaryConfig) || !bytes.Equal(res[1].Value, binaryConfig) {
		t.Errorf("binary file: %q / %q (errs %v / %v), want the bytes unchanged", res[0].Value, res[1].Value, res[0].Err, res[1].Err)
	}
	if string(res[2].Value) != "Host *\n  ForwardAgent no\n" || res[2].Err != nil {
		t.Errorf("document: %q, %v", res[2].Value, res[2].Err)
	}
	if source.ClassOf(res[3].Err) != ClassNotFound || !strings.Contains(res[3].Err.Error(), "not a Document") {
		t.Errorf("non-document item: %v", res[3].Err)
	}
	if string(res[4].Value) != "hunter2-canary" {
		t.Errorf("field next to files: %q, %v", res[4].Value, res[4].Err)
	}
	if source.ClassOf(res[5].Err) != ClassNotFound || !strings.Contains(res[5].Err.Error(), `no vault named "nowhere"`) {
		t.Errorf("missing vault: %v", res[5].Err)
	}
	// One ResolveAll, one vault list, one item list and one batched item
	// read for the vault, then one read per distinct file read.
	want := map[string]int{"SignIn": 1, "ResolveAll": 1, "Vaults.List": 1, "Items.List": 1, "Items.GetAll": 1, "Files.Read": 3}
	for m, n := range want {
		if got := s.count(m); got != n {
			t.Errorf("%s called %d times, want %d (requests %v)", m, got, n, s.requests)
		}
	}
	if o.Calls() != len(s.requests) {
		t.Errorf("Calls() = %d, but %d requests were made", o.Calls(), len(s.requests))
	}
}

func TestOnePasswordFetchStopsOnBatchFailure(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want Class
	}{
		{fmt.Errorf("wrapped: %w", &onepassword.RateLimitExceededError{}), ClassRateLimited},
		{errors.New(`Post "https://x.1password.com/api/v1/resolve": dial tcp 127.0.0.1:1: connect: connection refused (recovered by wazero)`), ClassUnreachable},
		{errors.New("you are not authenticated"), ClassInvalidToken},
	} {
		s := newStandIn()
		s.fail["ResolveAll"] = tc.err
		o := standInSource(t, s)
		res := o.Fetch(context.Background(), []Ref{mustParse(t, "op://egoengine/Login/password")[0], {Vault: "egoengine", Item: "home/.ssh/config"}})
		for i, r := range res {
			if source.ClassOf(r.Err) != tc.want {
				t.Errorf("%v: result %d: %v, want class %s", tc.err, i, r.Err, tc.want)
			}
		}
		// The Document was not tried: the same failure would only cost quota.
		if len(s.requests) != 2 {
			t.Errorf("%v: requests %v, want sign-in and ResolveAll only", tc.err, s.requests)
		}
	}

	// A failure that says nothing about the next request leaves the rest
	// of the pass to go on.
	s := newStandIn()
	s.fail["ResolveAll"] = errors.New("a conflict occurred on the server. this usually happens due to a race condition in requests")
	o := standInSource(t, s)
	res := o.Fetch(context.Background(), []Ref{mustParse(t, "op://egoengine/Login/password")[0], {Vault: "egoengine", Item: "home/.ssh/config"}})
	if source.ClassOf(res[0].Err) != ClassOther || res[1].Err != nil || len(res[1].Value) == 0 {
		t.Errorf("other failure: %v / %v %q", res[0].Err, res[1].Err, res[1].Value)
	}
}

func TestOnePasswordSignInRetried(t *testing.T) {
	s := newStandIn()
	s.fail["SignIn"] = errors.New(`Post "https://x.1password.com/api/v3/auth/start?": EOF (recovered by wazero)`)
	o := standInSource(t, s)
	refs := mustParse(t, "op://egoengine/Login/password")
	if r := o.Fetch(context.Background(), refs); source.ClassOf(r[0].Err) != ClassUnreachable {
		t.Fatalf("first pass: %v", r[0].Err)
	}
	delete(s.fail, "SignIn")
	if r := o.Fetch(context.Background(), refs); r[0].Err != nil || string(r[0].Value) != "hunter2-canary" {
		t.Fatalf("second pass after the network came back: %v", r[0].Err)
	}
	if s.count("SignIn") != 2 {
		t.Errorf("sign-ins: %d, want 2", s.count("SignIn"))
	}

	// An ended session is dropped, so the next pass signs in again.
	s.fail["ResolveAll"] = errors.New("session expired")
	o.Fetch(context.Background(), refs)
	delete(s.fail, "ResolveAll")
	o.Fetch(context.Background(), refs)
	if s.count("SignIn") != 3 {
		t.Errorf("sign-ins after an ended session: %d, want 3", s.count("SignIn"))
	}
}

func TestOnePasswordDocuments(t *testing.T) {
	s := newStandIn()
	o := standInSource(t, s)
	docs, err := o.Documents(context.Background(), "EgoEngine", "home/")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range docs {
		if d.Err != nil {
			got = append(got, d.Title+" ERR "+string(source.ClassOf(d.Err)))
		} else {
			got = append(got, d.Title+"="+string(d.Content))
		}
	}
	want := []string{
		"home/.dup ERR not-found", // two items with one title: neither is picked
		"home/.gitconfig=[user]\n\tname = x\n",
		"home/.ssh/config=Host *\n  ForwardAgent no\n",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("documents:\n got %q\nwant %q", got, want)
	}
	// Vault list, item list, one batched read, one file read per document.
	if s.count("Items.GetAll") != 1 || s.count("Files.Read") != 2 || o.Calls() != len(s.requests) || o.Calls() != 6 {
		t.Errorf("requests %v, Calls() %d", s.requests, o.Calls())
	}

	// None match: no batched read, no file read.
	s2 := newStandIn()
	o2 := standInSource(t, s2)
	if docs, err := o2.Documents(context.Background(), "egoengine", "nothing/"); err != nil || len(docs) != 0 {
		t.Errorf("no match: %v, %v", docs, err)
	}
	if s2.count("Items.GetAll") != 0 || s2.count("Files.Read") != 0 {
		t.Errorf("no match made requests %v", s2.requests)
	}

	// A missing vault is an error of the listing itself.
	if _, err := o2.Documents(context.Background(), "nowhere", "home/"); source.ClassOf(err) != ClassNotFound || !strings.HasPrefix(err.Error(), "op://nowhere: ") {
		t.Errorf("missing vault: %v", err)
	}
}

func TestOnePasswordDocumentsStopAfterRateLimit(t *testing.T) {
	s := newStandIn()
	s.fail["Files.Read"] = &onepassword.RateLimitExceededError{}
	o := standInSource(t, s)
	docs, err := o.Documents(context.Background(), "egoengine", "home/")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		if d.Title == "home/.dup" {
			continue
		}
		if source.ClassOf(d.Err) != ClassRateLimited || d.Content != nil {
			t.Errorf("%s: %v, want rate-limited", d.Title, d.Err)
		}
	}
	if s.count("Files.Read") != 1 {
		t.Errorf("file reads after the rate limit hit: %d, want 1 (then stop)", s.count("Files.Read"))
	}
}
