package opservice

import (
	"bytes"
	"context"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	onepassword "github.com/1password/onepassword-sdk-go"
)

// startWithSDK runs a service and sends http.DefaultClient, which the SDK
// uses, to it alone.
func startWithSDK(t *testing.T) *Service {
	t.Helper()
	if testing.Short() {
		t.Skip("loads the 1Password SDK's core")
	}
	s, err := Start("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	old := http.DefaultClient
	tr := s.Transport()
	http.DefaultClient = &http.Client{Transport: tr}
	t.Cleanup(func() { http.DefaultClient = old; tr.CloseIdleConnections() })
	return s
}

func signIn(t *testing.T, token string) (*onepassword.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return onepassword.NewClient(ctx, onepassword.WithServiceAccountToken(token), onepassword.WithIntegrationInfo("opservice-test", "v0"))
}

// TestServiceFollowsTheSDKInGoMod fails when go.mod's SDK is not the version
// whose protocol this service plays, or when the core announces another
// build than the one the notes were made with: then the service must be
// checked against the new core before anything built on it is believed.
func TestServiceFollowsTheSDKInGoMod(t *testing.T) {
	mod, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*github\.com/1password/onepassword-sdk-go (v\S+)`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod requires no github.com/1password/onepassword-sdk-go; the 1Password stand-in follows nothing")
	}
	if got := string(m[1]); got != SDKVersion {
		t.Fatalf("go.mod requires the 1Password SDK %s, but this stand-in plays the protocol of %s: re-run its tests against "+
			"the new core, update the notes and SDKVersion (and the client build below) only once they pass", got, SDKVersion)
	}
	if testing.Short() {
		return // the core's own version needs the core
	}
	s := startWithSDK(t)
	if _, err := signIn(t, s.Token()); err != nil {
		t.Fatalf("the real SDK could not sign in to the stand-in: %v", err)
	}
	if got := s.Clients(); len(got) != 1 || got[0] != CoreClient {
		t.Fatalf("the SDK's core says it is %q, the stand-in follows %q", got, CoreClient)
	}
}

// TestRealSDKAgainstTheService drives the SDK's public API (no egoagent code)
// through sign-in, listing, batched reads, resolving and file downloads.
func TestRealSDKAgainstTheService(t *testing.T) {
	s := startWithSDK(t)
	bin := []byte{0, 1, 0xff, '\r', '\n', 0}
	vaultID := s.AddVault(Vault{Name: "egoengine", Items: []Item{
		{Title: "Login", Fields: []Field{{Title: "password", Value: "hunter2", Concealed: true}},
			Sections: []Section{{Title: "api", Fields: []Field{{Title: "key", Value: "k1"}},
				Files: []File{{Name: "auth.json", Content: []byte("{}\n")}, {Name: "bin", Content: bin}}}}},
		{Title: "home/.ssh/config", Category: Document, Document: &File{Name: "config", Content: []byte("Host *\r\n")}},
	}})
	c, err := signIn(t, s.Token())
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Requests(); got[RouteAuthStart] != 1 || got[RouteAuth] != 1 || got[RouteConfirmKey] != 1 || got[RouteAuthComplete] != 1 || s.Total() != 4 {
		t.Fatalf("sign-in requests: %v", got)
	}
	ctx := context.Background()
	refs := []string{"op://egoengine/Login/password", "op://egoengine/Login/api/key", "op://egoengine/Login/auth.json", "op://egoengine/Login/bin", "op://egoengine/Login/nope"}
	r, err := c.Secrets().ResolveAll(ctx, refs)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{refs[0]: "hunter2", refs[1]: "k1", refs[2]: "{}\n"}
	for ref, v := range want {
		if a := r.IndividualResponses[ref]; a.Content == nil || a.Content.Secret != v {
			t.Errorf("%s: %+v, want %q", ref, a, v)
		}
	}
	if a := r.IndividualResponses[refs[3]]; a.Error == nil || a.Error.Type != onepassword.ResolveReferenceErrorTypeVariantUnsupportedFileFormat {
		t.Errorf("binary attachment through Resolve: %+v", a)
	}
	if a := r.IndividualResponses[refs[4]]; a.Error == nil || a.Error.Type != onepassword.ResolveReferenceErrorTypeVariantFieldNotFound {
		t.Errorf("missing field: %+v", a)
	}

	its, err := c.Items().List(ctx, vaultID)
	if err != nil || len(its) != 2 {
		t.Fatalf("Items().List: %v, %v", its, err)
	}
	all, err := c.Items().GetAll(ctx, vaultID, []string{its[0].ID, its[1].ID})
	if err != nil || len(all.IndividualResponses) != 2 {
		t.Fatalf("GetAll: %v, %v", all, err)
	}
	files := map[string][]byte{}
	for _, a := range all.IndividualResponses {
		if a.Content == nil {
			t.Fatalf("GetAll entry: %+v", a.Error)
		}
		it := *a.Content
		for _, f := range it.Files {
			b, err := c.Items().Files().Read(ctx, vaultID, it.ID, f.Attributes)
			if err != nil {
				t.Fatal(err)
			}
			files[f.Attributes.Name] = b
		}
		if it.Document != nil {
			b, err := c.Items().Files().Read(ctx, vaultID, it.ID, *it.Document)
			if err != nil {
				t.Fatal(err)
			}
			files[it.Title] = b
		}
	}
	if string(files["bin"]) != string(bin) || string(files["auth.json"]) != "{}\n" || string(files["home/.ssh/config"]) != "Host *\r\n" {
		t.Errorf("files read back: %q", files)
	}
}

// TestUnknownTokenIsRefused: a token whose SRP secret the service does not
// know fails in the SRP exchange, as a revoked token would.
func TestUnknownTokenIsRefused(t *testing.T) {
	s := startWithSDK(t)
	if _, err := signIn(t, s.WrongToken()); err == nil {
		t.Fatal("the SDK signed in with a token the service does not know")
	}
	if got := s.Requests(); got[RouteConfirmKey] != 1 || got[RouteAuthComplete] != 0 {
		t.Fatalf("the wrong token was not refused at confirm-key: %v", got)
	}
}

// TestRotation plays an owner's rotation: a second token signs in beside
// the first; once the first is revoked it is refused at the start, while
// the second, and a session the first opened before, go on.
func TestRotation(t *testing.T) {
	s := startWithSDK(t)
	old := s.Token()
	before, err := signIn(t, old)
	if err != nil {
		t.Fatal(err)
	}
	rotated := s.NewToken()
	if _, err := signIn(t, rotated); err != nil {
		t.Fatalf("the new token: %v", err)
	}
	s.Revoke(old)
	if _, err := signIn(t, old); err == nil {
		t.Fatal("the SDK signed in with a revoked token")
	}
	if _, err := signIn(t, rotated); err != nil {
		t.Fatalf("the new token after the old one was revoked: %v", err)
	}
	if _, err := before.Vaults().List(context.Background()); err != nil {
		t.Errorf("a session opened before the revocation: %v", err)
	}
	// Each token is counted apart; a revoked one is refused before SRP.
	if got := [2]int{s.SignIns(old), s.SignIns(rotated)}; got != [2]int{1, 2} {
		t.Errorf("sign-ins (old, new) = %v, want [1 2]", got)
	}
	if got := s.Requests(); got[RouteAuthStart] != 4 || got[RouteConfirmKey] != 3 {
		t.Errorf("the revoked token was not refused at auth/start: %v", got)
	}
	// Each minted string of a credential is its own, and its secrets are
	// named apart from the other token's.
	if secrets := s.TokenSecretsOf(rotated); secrets[2] == s.TokenSecrets()[2] {
		t.Error("two credentials share a secret key")
	}
}

// TestRareSRPExchanges forces the exchanges a random sign-in meets only
// once in a few hundred: each must sign in. (A service that dropped leading
// zero bytes from the proofs failed about one sign-in in a hundred.)
func TestRareSRPExchanges(t *testing.T) {
	for name, pick := range map[string]func(*big.Int, []byte, []byte) bool{
		"client proof with a leading zero byte": func(_ *big.Int, m1, _ []byte) bool { return m1[0] == 0 },
		"server proof with a leading zero byte": func(_ *big.Int, _, p []byte) bool { return p[0] == 0 },
		"B shorter than the group":              func(B *big.Int, _, _ []byte) bool { return len(B.Bytes()) < srpPad },
		"B with an odd number of hex digits":    func(B *big.Int, _, _ []byte) bool { return len(B.Text(16))%2 == 1 },
	} {
		t.Run(name, func(t *testing.T) {
			s := startWithSDK(t)
			s.mu.Lock()
			s.pick = pick
			s.mu.Unlock()
			if _, err := signIn(t, s.Token()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestRealSDKWrites: the SDK's writes (Items().Create of a Login and of a
// Document, Put, Files().Attach, Files().Delete, Files().ReplaceDocument)
// land in the service, and a fresh client reads all of it back byte for
// byte, as does Item.
func TestRealSDKWrites(t *testing.T) {
	s := startWithSDK(t)
	vaultID := s.AddVault(Vault{Name: "egoengine"})
	c, err := signIn(t, s.Token())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	bin := append([]byte("\x00\xff\r\n"), make([]byte, 5000)...)
	login, err := c.Items().Create(ctx, onepassword.ItemCreateParams{
		Category: onepassword.ItemCategoryLogin, VaultID: vaultID, Title: "Codex Auth",
		Sections: []onepassword.ItemSection{{ID: "files", Title: "Files"}},
		Fields:   []onepassword.ItemField{{ID: "password", Title: "password", FieldType: onepassword.ItemFieldTypeConcealed, Value: "v1"}},
	})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	doc, err := c.Items().Create(ctx, onepassword.ItemCreateParams{
		Category: onepassword.ItemCategoryDocument, VaultID: vaultID, Title: "home/.ssh/config",
		Document: &onepassword.DocumentCreateParams{Name: "config", Content: []byte("Host a\n")},
	})
	if err != nil {
		t.Fatalf("Create Document: %v", err)
	}
	login.Fields[0].Value = "v2"
	if login, err = c.Items().Put(ctx, login); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if login, err = c.Items().Files().Attach(ctx, login, onepassword.FileCreateParams{Name: "auth.json", Content: []byte("{}\n"), SectionID: "files", FieldID: "authjson"}); err != nil {
		t.Fatalf("Attach text: %v", err)
	}
	if login, err = c.Items().Files().Attach(ctx, login, onepassword.FileCreateParams{Name: "old.bin", Content: []byte("old"), SectionID: "files", FieldID: "oldbin"}); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	if login, err = c.Items().Files().Attach(ctx, login, onepassword.FileCreateParams{Name: "bin", Content: bin, SectionID: "files", FieldID: "bin"}); err != nil {
		t.Fatalf("Attach binary: %v", err)
	}
	if login, err = c.Items().Files().Delete(ctx, login, "files", "oldbin"); err != nil {
		t.Fatalf("Files().Delete: %v", err)
	}
	if _, err = c.Items().Files().ReplaceDocument(ctx, doc, onepassword.DocumentCreateParams{Name: "config", Content: []byte("Host b\r\n")}); err != nil {
		t.Fatalf("ReplaceDocument: %v", err)
	}

	// A fresh client sees it all.
	c2, err := signIn(t, s.Token())
	if err != nil {
		t.Fatal(err)
	}
	r, err := c2.Secrets().ResolveAll(ctx, []string{"op://egoengine/Codex Auth/password", "op://egoengine/Codex Auth/auth.json", "op://egoengine/Codex Auth/old.bin"})
	if err != nil {
		t.Fatal(err)
	}
	if a := r.IndividualResponses["op://egoengine/Codex Auth/password"]; a.Content == nil || a.Content.Secret != "v2" {
		t.Errorf("the field after Put: %+v", a)
	}
	if a := r.IndividualResponses["op://egoengine/Codex Auth/auth.json"]; a.Content == nil || a.Content.Secret != "{}\n" {
		t.Errorf("the attached text file: %+v", a)
	}
	if a := r.IndividualResponses["op://egoengine/Codex Auth/old.bin"]; a.Error == nil {
		t.Errorf("the deleted file still resolves: %+v", a)
	}
	got, err := c2.Items().Get(ctx, vaultID, login.ID)
	if err != nil || len(got.Files) != 2 {
		t.Fatalf("Get: %d files, %v", len(got.Files), err)
	}
	for _, f := range got.Files {
		b, err := c2.Items().Files().Read(ctx, vaultID, got.ID, f.Attributes)
		if err != nil {
			t.Fatal(err)
		}
		if f.Attributes.Name == "bin" && !bytes.Equal(b, bin) {
			t.Errorf("binary attachment read back: %d bytes", len(b))
		}
	}
	gotDoc, err := c2.Items().Get(ctx, vaultID, doc.ID)
	if err != nil || gotDoc.Document == nil {
		t.Fatalf("Get Document: %v", err)
	}
	if b, err := c2.Items().Files().Read(ctx, vaultID, gotDoc.ID, *gotDoc.Document); err != nil || string(b) != "Host b\r\n" {
		t.Errorf("the replaced Document: %q, %v", b, err)
	}

	// And the service's own view.
	it, ok := s.Item("egoengine", "Codex Auth")
	if !ok {
		t.Fatal("Item: not found")
	}
	var names []string
	for _, sec := range it.Sections {
		for _, f := range sec.Files {
			names = append(names, f.Name)
			if f.Name == "bin" && !bytes.Equal(f.Content, bin) {
				t.Errorf("Item: the binary file is %d bytes", len(f.Content))
			}
		}
	}
	if len(names) != 2 {
		t.Errorf("Item: files %v", names)
	}
	if d, ok := s.Item("egoengine", "home/.ssh/config"); !ok || d.Document == nil || string(d.Document.Content) != "Host b\r\n" {
		t.Errorf("Item of the Document: %+v", d)
	}
	t.Logf("requests: %v", s.Requests())
}

// TestRealSDKRefusedWrites: what the real SDK reports when the service
// refuses a write, in both ways the service can refuse (see Refusal): to a
// read-only vault, and on an item version another writer has moved on
// from between the SDK's read of the item and its write. Nothing is
// written either way. The texts are what the 1Password source classifies.
func TestRealSDKRefusedWrites(t *testing.T) {
	s := startWithSDK(t)
	vaultID := s.AddVault(Vault{Name: "egoengine"})
	c, err := signIn(t, s.Token())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id := s.PutItem("egoengine", Item{Title: "Login", Fields: []Field{{Title: "password", Value: "v1", Concealed: true}}})
	stored := func() string {
		it, _ := s.Item("egoengine", "Login")
		return it.Sections[0].Fields[0].Value
	}
	put := func(value string) error {
		it, err := c.Items().Get(ctx, vaultID, id)
		if err != nil {
			t.Fatal(err)
		}
		it.Fields[0].Value = value
		_, err = c.Items().Put(ctx, it)
		return err
	}
	for _, tc := range []struct {
		refusal         Refusal
		readOnly, stale string
	}{
		{RefuseStatus, "you do not have the right permissions to perform this action: performing a vault operation", "data conflict occurred on the server: performing a vault operation"},
		{RefusePerItem, "you do not have the right permissions to perform this action: not sufficient permissions for the item update operation", "data conflict occurred on the server: race condition when updating items in the same vault"},
	} {
		s.RefuseWritesWith(tc.refusal)
		s.SetReadOnly("egoengine", true)
		s.ResetCounts()
		err := put("mine")
		if err == nil || !strings.Contains(err.Error(), tc.readOnly) || stored() != "v1" {
			t.Errorf("refusal %d, read-only vault: %v; stored %q", tc.refusal, err, stored())
		}
		if s.Requests()[RoutePatchItems] != 1 {
			t.Errorf("the SDK did not send the write to the read-only vault: %v", s.Log())
		}
		t.Logf("refusal %d, read-only: %v", tc.refusal, err)

		s.SetReadOnly("egoengine", false)
		s.Before(RoutePatchItems, func() {
			s.PutItem("egoengine", Item{ID: id, Title: "Login", Fields: []Field{{Title: "password", Value: "theirs", Concealed: true}}})
		})
		err = put("mine")
		if err == nil || !strings.Contains(err.Error(), tc.stale) || stored() != "theirs" {
			t.Errorf("refusal %d, stale version: %v; stored %q", tc.refusal, err, stored())
		}
		t.Logf("refusal %d, stale: %v", tc.refusal, err)
		if err := put("v1"); err != nil || stored() != "v1" {
			t.Fatalf("a write on the current version: %v", err)
		}
	}
	// The SDK itself checks the version it was given against a fresh read
	// of the item, before any write: an Item read before another writer's
	// change is refused without a request.
	old, _ := c.Items().Get(ctx, vaultID, id)
	s.PutItem("egoengine", Item{ID: id, Title: "Login", Fields: []Field{{Title: "password", Value: "theirs", Concealed: true}}})
	old.Fields[0].Value = "mine"
	s.ResetCounts()
	if _, err := c.Items().Put(ctx, old); err == nil || !strings.Contains(err.Error(), "not up to date") || s.Requests()[RoutePatchItems] != 0 {
		t.Errorf("Put of an outdated Item: %v, %v", err, s.Log())
	} else {
		t.Logf("outdated Item: %v", err)
	}
}
