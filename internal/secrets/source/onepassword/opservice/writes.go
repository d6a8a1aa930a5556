package opservice

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// fileAttrs is a file as an item's details describe it.
type fileAttrs struct {
	FileName        string          `json:"fileName"`
	DocumentID      string          `json:"documentId"`
	UnencryptedSize int             `json:"unencryptedSize"`
	EncryptedSize   int             `json:"encryptedSize"`
	IntegrityHash   string          `json:"integrityHash"`
	Nonce           string          `json:"nonce"`
	EncryptionKey   symJWK          `json:"encryptionKey"`
	SigningKey      json.RawMessage `json:"signingKey,omitempty"`
}

// details is the part of an item's details the service reads back.
type details struct {
	Sections []struct {
		Name   string `json:"name"`
		Title  string `json:"title"`
		Fields []struct {
			K string          `json:"k"`
			N string          `json:"n"`
			T string          `json:"t"`
			V json.RawMessage `json:"v"`
		} `json:"fields"`
	} `json:"sections"`
	DocumentAttributes *fileAttrs `json:"documentAttributes"`
}

// upload keeps a file the client encrypted and answers its ID and a signing
// key, which the client then records in the item.
func (s *Service) upload(_ *session, _ *http.Request, body []byte) (any, []byte, int) {
	if len(body) < 16 {
		return nil, nil, http.StatusBadRequest
	}
	id := newID()
	s.mu.Lock()
	s.blobs[id] = append([]byte(nil), body...)
	s.mu.Unlock()
	_, jwk := newSymKey(newID())
	return map[string]any{"fileId": id, "signingKey": jwk}, nil, 0
}

// wireRecord is an item record as the client writes it.
type wireRecord struct {
	UUID         string   `json:"uuid"`
	ItemVersion  int      `json:"itemVersion"`
	EncOverview  envelope `json:"encOverview"`
	EncDetails   envelope `json:"encDetails"`
	Trashed      string   `json:"trashed"`
	TemplateUUID string   `json:"templateUuid"`
	CreatedAt    string   `json:"createdAt"`
	UpdatedAt    string   `json:"updatedAt"`
	EncryptedBy  string   `json:"encryptedBy"`
}

// patchItems stores the items a client created or changed. Every file an
// item refers to must be one the service holds, of the size and hash the
// item says, and must decrypt with the key the item gives.
func (s *Service) patchItems(_ *session, r *http.Request, body []byte) (any, []byte, int) {
	var recs []wireRecord
	if json.Unmarshal(body, &recs) != nil {
		return nil, nil, http.StatusBadRequest
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.vaultByID(r.PathValue("vault"))
	if v == nil {
		return nil, nil, http.StatusNotFound
	}
	if cv, err := strconv.Atoi(r.PathValue("version")); err != nil || cv > v.contentVersion {
		return nil, nil, http.StatusBadRequest
	}
	perItem := s.refusal == RefusePerItem
	if v.readOnly && !perItem {
		return nil, nil, http.StatusForbidden
	}
	failed := map[string]int{}
	updated := map[string]int{}
	var store []*record
	for _, w := range recs {
		if w.EncryptedBy != v.keyID || len(w.UUID) != 26 {
			return nil, nil, http.StatusBadRequest
		}
		ov, err := openGCM(v.key, w.EncOverview)
		if err != nil {
			return nil, nil, http.StatusBadRequest
		}
		det, err := openGCM(v.key, w.EncDetails)
		if err != nil {
			return nil, nil, http.StatusBadRequest
		}
		if err := s.checkFiles(det); err != nil {
			return nil, nil, http.StatusBadRequest
		}
		trashed := w.Trashed
		if trashed == "" {
			trashed = "N"
		}
		// The base of the change must be the version stored now, or a
		// second writer would silently undo the first.
		switch {
		case v.readOnly:
			failed[w.UUID] = patchPermission
			continue
		case w.ItemVersion != v.version(w.UUID) && perItem:
			failed[w.UUID] = patchRace
			continue
		case w.ItemVersion != v.version(w.UUID):
			return nil, nil, http.StatusConflict
		}
		rec := &record{ID: w.UUID, Template: w.TemplateUUID, Trashed: trashed, Version: w.ItemVersion + 1,
			Created: w.CreatedAt, Updated: w.UpdatedAt, Overview: ov, Details: det}
		store = append(store, rec)
		updated[rec.ID] = rec.Version
	}
	for _, rec := range store {
		replaced := false
		for i, old := range v.items {
			if old.ID == rec.ID {
				v.items[i], replaced = rec, true
			}
		}
		if !replaced {
			v.items = append(v.items, rec)
		}
	}
	if len(store) > 0 {
		v.contentVersion++
	}
	return map[string]any{"contentVersion": v.contentVersion, "updatedItems": updated, "failedItems": failed}, nil, 0
}

// checkFiles verifies every file that item details refer to.
func (s *Service) checkFiles(det []byte) error {
	var d details
	if err := json.Unmarshal(det, &d); err != nil {
		return err
	}
	var files []fileAttrs
	if d.DocumentAttributes != nil {
		files = append(files, *d.DocumentAttributes)
	}
	for _, sec := range d.Sections {
		for _, f := range sec.Fields {
			if f.K != "file" {
				continue
			}
			var a fileAttrs
			if err := json.Unmarshal(f.V, &a); err != nil {
				return err
			}
			files = append(files, a)
		}
	}
	for _, a := range files {
		if _, err := s.plain(a); err != nil {
			return fmt.Errorf("file %s: %w", a.DocumentID, err)
		}
	}
	return nil
}

// plain decrypts a stored file after checking its size and hash.
func (s *Service) plain(a fileAttrs) ([]byte, error) {
	ct, ok := s.blobs[a.DocumentID]
	if !ok {
		return nil, fmt.Errorf("no such file")
	}
	sum := sha256.Sum256(ct)
	if len(ct) != a.EncryptedSize || b64.EncodeToString(sum[:]) != a.IntegrityHash {
		return nil, fmt.Errorf("size or hash does not match")
	}
	key, err := b64.DecodeString(a.EncryptionKey.K)
	if err != nil {
		return nil, err
	}
	nonce, err := b64.DecodeString(a.Nonce)
	if err != nil {
		return nil, err
	}
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	if len(nonce) != gcm.NonceSize() {
		return nil, fmt.Errorf("nonce of %d bytes", len(nonce))
	}
	p, err := gcm.Open(nil, nonce, ct, nil)
	if err != nil {
		return nil, err
	}
	if len(p) != a.UnencryptedSize {
		return nil, fmt.Errorf("content is %d bytes, the item says %d", len(p), a.UnencryptedSize)
	}
	return p, nil
}

// Item returns the item of the vault named vaultName with this title (or
// ID) as it is stored now, whoever wrote it, as plain Go values: fields with
// their values, files with their decrypted content. Section IDs are kept;
// fields outside a named section are in the section "add more".
func (s *Service) Item(vaultName, title string) (Item, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.vaultLocked(vaultName)
	if v == nil {
		return Item{}, false
	}
	for _, rec := range v.items {
		if rec.ID != title && rec.title() != title {
			continue
		}
		it := Item{ID: rec.ID, Title: rec.title(), Category: Category(rec.Template)}
		var d details
		json.Unmarshal(rec.Details, &d)
		for _, sec := range d.Sections {
			out := Section{ID: sec.Name, Title: sec.Title}
			for _, f := range sec.Fields {
				switch f.K {
				case "file":
					var a fileAttrs
					json.Unmarshal(f.V, &a)
					p, _ := s.plain(a)
					out.Files = append(out.Files, File{FieldID: f.N, Name: a.FileName, Content: p})
				default:
					var val string
					json.Unmarshal(f.V, &val)
					out.Fields = append(out.Fields, Field{ID: f.N, Title: f.T, Value: val, Concealed: f.K == "concealed"})
				}
			}
			it.Sections = append(it.Sections, out)
		}
		if a := d.DocumentAttributes; a != nil {
			p, _ := s.plain(*a)
			it.Document = &File{Name: a.FileName, Content: p}
		}
		return it, true
	}
	return Item{}, false
}

// version is the stored version of the item with this ID, 0 when there is
// none (a new item's record carries itemVersion 0).
func (v *vault) version(id string) int {
	for _, rec := range v.items {
		if rec.ID == id {
			return rec.Version
		}
	}
	return 0
}

// readACL is what a read-only vault grants: ReadItems | RevealItemPassword
// in the SDK's permission bits.
const readACL = 32 | 16

// The codes of failedItems in a PATCH answer, as SDK v0.4.1's core reads
// them (found by answering each number to Items().Put): 1 session expired,
// 100 bad request body, 101 no permission, 103 internal error, 104 a race
// with another write, 105 file not found, 106 item too big.
const (
	patchPermission = 101
	patchRace       = 104
)

// Refusal is how the service refuses a write to a read-only vault or on a
// stale item version. Which one the real service uses is not known; the
// core understands both.
type Refusal int

const (
	// RefuseStatus answers the whole PATCH with an HTTP error: 403 for a
	// read-only vault, 409 for a stale item version. The SDK reports "you
	// do not have the right permissions to perform this action: ..." and
	// "data conflict occurred on the server: ...".
	RefuseStatus Refusal = iota
	// RefusePerItem answers 200 with the item in failedItems (codes 101
	// and 104), which the SDK reports as "you do not have the right
	// permissions to perform this action: not sufficient permissions for
	// the item update operation" and "data conflict occurred on the server:
	// race condition when updating items in the same vault".
	RefusePerItem
)

// RefuseWritesWith sets how later refused writes are answered.
func (s *Service) RefuseWritesWith(r Refusal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refusal = r
}
