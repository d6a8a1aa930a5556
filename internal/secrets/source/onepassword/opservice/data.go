package opservice

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Vault is a vault as a test sets it up.
type Vault struct {
	ID    string // 26 characters of [a-z0-9]; "" picks one
	Name  string
	Items []Item
}

// Item is an item as a test sets it up.
type Item struct {
	ID       string // 26 characters of [a-z0-9]; "" picks one
	Title    string
	Category Category // "" means Login
	// Fields are the item's fields outside any named section.
	Fields   []Field
	Sections []Section
	// Document is the file of a Document item.
	Document *File
}

// Category is an item's kind, as its template.
type Category string

const (
	Login      Category = "001"
	SecureNote Category = "003"
	Password   Category = "005"
	Document   Category = "006"
)

// Section is a named group of fields and files in an item.
type Section struct {
	ID     string // "" picks one
	Title  string
	Fields []Field
	Files  []File
}

// Field is one field; Concealed fields are passwords and the like.
type Field struct {
	ID        string // "" picks one
	Title     string
	Value     string
	Concealed bool
}

// File is a file attached to a section, or a Document item's file.
type File struct {
	FieldID string // the field that holds an attachment; "" picks one
	Name    string
	Content []byte
}

// vault is the service's record of a vault; items hold their overview and
// details in the clear and are encrypted when served.
type vault struct {
	id, name       string
	key            []byte
	keyID          string
	contentVersion int
	changer        string // the user ID recorded as the last to change an item
	readOnly       bool   // the account may read the vault but not write to it (see SetReadOnly)
	created        time.Time
	items          []*record
}

type record struct {
	ID       string          `json:"uuid"`
	Template string          `json:"templateUuid"`
	Trashed  string          `json:"trashed"`
	Version  int             `json:"itemVersion"`
	Created  string          `json:"createdAt"`
	Updated  string          `json:"updatedAt"`
	Overview json.RawMessage `json:"-"`
	Details  json.RawMessage `json:"-"`
}

// AddVault adds v with its items and returns its ID.
func (s *Service) AddVault(v Vault) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v.ID == "" {
		v.ID = newID()
	}
	vk := &vault{id: v.ID, name: v.Name, key: randomBytes(32), keyID: newID(), contentVersion: 1, changer: s.acct.userUUID, created: time.Now().UTC()}
	s.vaults = append(s.vaults, vk)
	for _, it := range v.Items {
		s.putLocked(vk, it)
	}
	return v.ID
}

// PutItem adds an item to the vault named vaultName, or replaces the item
// with the same ID, or failing that the same title; it returns the item's
// ID. A replaced item gets a new version, as after an edit in 1Password.
func (s *Service) PutItem(vaultName string, it Item) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.vaultLocked(vaultName)
	if v == nil {
		panic("opservice: no vault " + vaultName)
	}
	return s.putLocked(v, it)
}

// SetReadOnly makes the account's access to the vault named vaultName
// read-only (or full again): the vault list then grants only reading, and
// writes to the vault are refused as the service refuses them.
func (s *Service) SetReadOnly(vaultName string, readOnly bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.vaultLocked(vaultName)
	if v == nil {
		panic("opservice: no vault " + vaultName)
	}
	v.readOnly = readOnly
}

// DeleteItem removes the item with this title (or ID) from the vault.
func (s *Service) DeleteItem(vaultName, title string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.vaultLocked(vaultName)
	for i, r := range v.items {
		if r.ID == title || r.title() == title {
			v.items = append(v.items[:i], v.items[i+1:]...)
			v.contentVersion++
			return
		}
	}
}

func (s *Service) vaultLocked(name string) *vault {
	for _, v := range s.vaults {
		if v.name == name || v.id == name {
			return v
		}
	}
	return nil
}

func (r *record) title() string {
	var o struct {
		Title string `json:"title"`
	}
	json.Unmarshal(r.Overview, &o)
	return o.Title
}

func (s *Service) putLocked(v *vault, it Item) string {
	if it.ID == "" {
		for _, r := range v.items {
			if r.title() == it.Title {
				it.ID = r.ID
			}
		}
	}
	if it.ID == "" {
		it.ID = newID()
	}
	if it.Category == "" {
		it.Category = Login
	}
	now := time.Now().UTC().Format(time.RFC3339)
	rec := &record{ID: it.ID, Template: string(it.Category), Trashed: "N", Version: 1, Created: now, Updated: now}
	overview := map[string]any{"title": it.Title, "ainfo": "—"}
	details := map[string]any{}
	var sections []any
	if len(it.Fields) > 0 {
		sections = append(sections, s.section("add more", "", it.Fields, nil))
	}
	for _, sec := range it.Sections {
		id := sec.ID
		if id == "" {
			id = newID()
		}
		sections = append(sections, s.section(id, sec.Title, sec.Fields, sec.Files))
	}
	if sections != nil {
		details["sections"] = sections
	}
	if it.Document != nil {
		details["documentAttributes"] = s.storeFile(*it.Document)
		details["notesPlain"] = ""
		overview["ainfo"] = fmt.Sprintf("%d bytes", len(it.Document.Content))
	}
	rec.Overview, rec.Details = mustJSON(overview), mustJSON(details)
	for i, old := range v.items {
		if old.ID == rec.ID {
			rec.Version = old.Version + 1
			rec.Created = old.Created
			v.items[i] = rec
			v.contentVersion++
			return rec.ID
		}
	}
	v.items = append(v.items, rec)
	v.contentVersion++
	return rec.ID
}

func (s *Service) section(id, title string, fields []Field, files []File) map[string]any {
	var out []any
	for _, f := range fields {
		fid := f.ID
		if fid == "" {
			fid = newID()
		}
		kind := "string"
		if f.Concealed {
			kind = "concealed"
		}
		out = append(out, map[string]any{"k": kind, "n": fid, "t": f.Title, "v": f.Value})
	}
	for _, f := range files {
		fid := f.FieldID
		if fid == "" {
			fid = newID()
		}
		out = append(out, map[string]any{"k": "file", "n": fid, "t": f.Name, "v": s.storeFile(f)})
	}
	sec := map[string]any{"name": id, "title": title}
	if out != nil {
		sec["fields"] = out
	}
	return sec
}

// storeFile encrypts a file's content under a key of its own, keeps the
// ciphertext and returns the attributes the item's details carry.
func (s *Service) storeFile(f File) map[string]any {
	key, jwk := newSymKey(newID())
	nonce := randomBytes(12)
	ct, err := fileCipher(key, nonce, f.Content)
	if err != nil {
		panic(err)
	}
	id := newID()
	s.blobs[id] = ct
	sum := sha256.Sum256(ct)
	return map[string]any{
		"fileName": f.Name, "documentId": id,
		"unencryptedSize": len(f.Content), "encryptedSize": len(ct),
		"integrityHash": b64.EncodeToString(sum[:]), "nonce": b64.EncodeToString(nonce),
		"encryptionKey": jwk,
	}
}

// wire is a record as the service sends it, encrypted under the vault key.
func (v *vault) wire(r *record, details bool) (map[string]any, error) {
	ov, err := sealGCM(v.key, v.keyID, r.Overview)
	if err != nil {
		return nil, err
	}
	m := map[string]any{
		"uuid": r.ID, "templateUuid": r.Template, "trashed": r.Trashed, "itemVersion": r.Version,
		"createdAt": r.Created, "updatedAt": r.Updated, "encryptedBy": v.keyID, "encOverview": ov,
		"faveIndex": 0, "changerUuid": v.changer,
	}
	if details {
		d, err := sealGCM(v.key, v.keyID, r.Details)
		if err != nil {
			return nil, err
		}
		m["encDetails"] = d
	}
	return m, nil
}

// vaultWire is a vault as the vault list and the vault read answer it.
func (s *Service) vaultWire(v *vault) (map[string]any, error) {
	a := &s.acct
	vkJWK := symJWK{Alg: "A256GCM", Ext: true, K: b64.EncodeToString(v.key), KeyOps: []string{"decrypt", "encrypt"}, Kty: "oct", Kid: v.keyID}
	encKey, err := sealRSA(&a.rsaKey.PublicKey, a.keysetID, mustJSON(vkJWK))
	if err != nil {
		return nil, err
	}
	attrs, err := sealGCM(v.key, v.keyID, mustJSON(map[string]any{"name": v.name, "desc": "", "type": "U", "uuid": v.id}))
	if err != nil {
		return nil, err
	}
	// The SDK's own permission bits (ReadItems, UpdateItems, ... in its
	// types.go): a read-only vault grants reading and revealing only. The
	// v0.4.1 core does not check them before a write (it sent the PATCH
	// all the same): the refusal is the service's (patchItems).
	acl := 0x00FFFFFF
	if v.readOnly {
		acl = readACL
	}
	ts := v.created.Format(time.RFC3339)
	// combinedAccess has the shape of an access record.
	access := map[string]any{
		"vaultUuid": v.id, "accessorType": "user", "accessorUuid": a.userUUID, "accessVersion": 1,
		"acl": acl, "leaseTimeout": 0, "vaultKeySN": 1, "encryptedBy": a.keysetID, "encVaultKey": encKey,
	}
	return map[string]any{
		"uuid": v.id, "type": "U", "createdAt": ts, "updatedAt": ts, "attrVersion": 1,
		"contentVersion": v.contentVersion, "activeItemCount": len(v.items), "clientAccess": acl,
		"encAttrs": attrs, "access": []any{access}, "combinedAccess": access,
	}, nil
}

func (s *Service) listVaults(*session, *http.Request, []byte) (any, []byte, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []any{}
	for _, v := range s.vaults {
		w, err := s.vaultWire(v)
		if err != nil {
			return nil, nil, http.StatusInternalServerError
		}
		out = append(out, w)
	}
	return out, nil, 0
}

func (s *Service) oneVault(_ *session, r *http.Request, _ []byte) (any, []byte, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.vaultByID(r.PathValue("vault"))
	if v == nil {
		return nil, nil, http.StatusNotFound
	}
	w, err := s.vaultWire(v)
	if err != nil {
		return nil, nil, http.StatusInternalServerError
	}
	return w, nil, 0
}

func (s *Service) vaultByID(id string) *vault {
	for _, v := range s.vaults {
		if v.id == id {
			return v
		}
	}
	return nil
}

func (s *Service) overviews(_ *session, r *http.Request, _ []byte) (any, []byte, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.vaultByID(r.PathValue("vault"))
	if v == nil {
		return nil, nil, http.StatusNotFound
	}
	items := []any{}
	for _, rec := range v.items {
		w, err := v.wire(rec, false)
		if err != nil {
			return nil, nil, http.StatusInternalServerError
		}
		items = append(items, w)
	}
	return map[string]any{"contentVersion": v.contentVersion, "batchComplete": true, "items": items, "deletedItemUuids": []string{}}, nil, 0
}

func (s *Service) batch(_ *session, r *http.Request, body []byte) (any, []byte, int) {
	var req struct {
		ItemUUIDs []string `json:"itemUuids"`
	}
	if json.Unmarshal(body, &req) != nil {
		return nil, nil, http.StatusBadRequest
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.vaultByID(r.PathValue("vault"))
	if v == nil {
		return nil, nil, http.StatusNotFound
	}
	items := []any{}
	for _, id := range req.ItemUUIDs {
		for _, rec := range v.items {
			if rec.ID == id {
				w, err := v.wire(rec, true)
				if err != nil {
					return nil, nil, http.StatusInternalServerError
				}
				items = append(items, w)
			}
		}
	}
	return map[string]any{"contentVersion": v.contentVersion, "items": items}, nil, 0
}

func (s *Service) oneItem(_ *session, r *http.Request, _ []byte) (any, []byte, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.vaultByID(r.PathValue("vault"))
	if v == nil {
		return nil, nil, http.StatusNotFound
	}
	for _, rec := range v.items {
		if rec.ID == r.PathValue("item") {
			w, err := v.wire(rec, true)
			if err != nil {
				return nil, nil, http.StatusInternalServerError
			}
			return map[string]any{"contentVersion": v.contentVersion, "item": w}, nil, 0
		}
	}
	return nil, nil, http.StatusNotFound
}

func (s *Service) download(_ *session, r *http.Request, _ []byte) (any, []byte, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blobs[r.PathValue("file")]
	if !ok {
		return nil, nil, http.StatusNotFound
	}
	if b == nil {
		b = []byte{}
	}
	return nil, b, 0
}
