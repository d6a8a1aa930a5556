package onepassword

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	onepassword "github.com/1password/onepassword-sdk-go"
)

// locator finds vaults, items and files through the SDK's items API. It
// lists the vaults once, each vault's items once and reads each item once
// in its life, which is one Fetch or Documents call, or in one-pass mode the
// Client's whole life (one pass): either way a pass sees the vault as it is
// now, not as an earlier pass saw it.
type locator struct {
	o *Client
	c *onepassword.Client

	vaults []onepassword.VaultOverview
	listed bool
	lists  map[string][]onepassword.ItemOverview // active items by vault ID

	// fatal is the first error that would repeat on every further request
	// (unreachable, rate limited, token rejected). Once set, the locator
	// sends nothing more: retrying inside one pass only spends quota.
	fatal *Error

	// read holds the items already read, by vault ID and item ID, so that
	// a locator that lives for a pass reads each item once.
	read map[string]map[string]itemResult
}

// itemResult is one item of a batched read, or why it could not be read.
type itemResult struct {
	item *onepassword.Item
	err  *Error
}

// call runs one request against 1Password with the per-request deadline,
// counting it and classifying its error.
func (l *locator) call(ctx context.Context, f func(ctx context.Context) error) *Error {
	if l.fatal != nil {
		return l.fatal
	}
	l.o.calls.Add(1)
	cctx, cancel := context.WithTimeout(ctx, l.o.timeout)
	defer cancel()
	if err := f(cctx); err != nil {
		e := l.o.classify(ctx, cctx, err)
		if stopsPass(e) {
			l.fatal = e
		}
		return e
	}
	return nil
}

// vault returns the ID of the vault named (or identified by) name.
func (l *locator) vault(ctx context.Context, name string) (string, *Error) {
	if !l.listed {
		if err := l.call(ctx, func(ctx context.Context) error {
			var err error
			l.vaults, err = l.c.Vaults().List(ctx)
			return err
		}); err != nil {
			return "", err
		}
		l.listed = true
	}
	var ids []string
	for _, v := range l.vaults {
		if v.ID == name {
			return v.ID, nil
		}
		if strings.EqualFold(v.Title, name) {
			ids = append(ids, v.ID)
		}
	}
	switch len(ids) {
	case 1:
		return ids[0], nil
	case 0:
		return "", &Error{Class: ClassNotFound,
			Msg: fmt.Sprintf("no vault named %q that this service account can read; check the name, or grant the service account access to the vault", name)}
	default:
		return "", &Error{Class: ClassNotFound,
			Msg: fmt.Sprintf("%d vaults are named %q; use the vault's ID in the reference, or rename one", len(ids), name)}
	}
}

// items lists the active items of a vault.
func (l *locator) items(ctx context.Context, vaultID string) ([]onepassword.ItemOverview, *Error) {
	if its, ok := l.lists[vaultID]; ok {
		return its, nil
	}
	var its []onepassword.ItemOverview
	if err := l.call(ctx, func(ctx context.Context) error {
		var err error
		its, err = l.c.Items().List(ctx, vaultID, onepassword.NewItemListFilterTypeVariantByState(
			&onepassword.ItemListFilterByStateInner{Active: true, Archived: false}))
		return err
	}); err != nil {
		return nil, err
	}
	// A stand-in or a future SDK may ignore the filter; archived items must
	// not be mirrored or read either way.
	kept := its[:0]
	for _, it := range its {
		if it.State != onepassword.ItemStateArchived {
			kept = append(kept, it)
		}
	}
	if l.lists == nil {
		l.lists = map[string][]onepassword.ItemOverview{}
	}
	l.lists[vaultID] = kept
	return kept, nil
}

// item returns the ID of the active item that r names in the vault.
func (l *locator) item(ctx context.Context, vaultID string, r Ref) (string, *Error) {
	its, err := l.items(ctx, vaultID)
	if err != nil {
		return "", err
	}
	var ids []string
	for _, it := range its {
		if it.ID == r.Item {
			return it.ID, nil
		}
		if strings.EqualFold(it.Title, r.Item) {
			ids = append(ids, it.ID)
		}
	}
	switch len(ids) {
	case 1:
		return ids[0], nil
	case 0:
		return "", &Error{Class: ClassNotFound,
			Msg: fmt.Sprintf("no item named %q in vault %q; check the name, or create the item", r.Item, r.Vault)}
	default:
		return "", &Error{Class: ClassNotFound,
			Msg: fmt.Sprintf("%d items in vault %q are named %q; use the item's ID in the reference, or rename or archive all but one", len(ids), r.Vault, r.Item)}
	}
}

// getAll reads full items (fields, files, document) in one request, leaving
// out those this locator has read before.
func (l *locator) getAll(ctx context.Context, vaultID string, ids []string) (map[string]itemResult, *Error) {
	out := map[string]itemResult{}
	var unread []string
	for _, id := range ids {
		if r, ok := l.read[vaultID][id]; ok {
			out[id] = r
		} else {
			unread = append(unread, id)
		}
	}
	got, err := l.batch(ctx, vaultID, unread)
	if err != nil {
		return nil, err
	}
	if l.read == nil {
		l.read = map[string]map[string]itemResult{}
	}
	if l.read[vaultID] == nil {
		l.read[vaultID] = map[string]itemResult{}
	}
	for id, r := range got {
		out[id] = r
		l.read[vaultID][id] = r
	}
	return out, nil
}

// batch reads full items in one request.
func (l *locator) batch(ctx context.Context, vaultID string, ids []string) (map[string]itemResult, *Error) {
	out := map[string]itemResult{}
	if len(ids) == 0 {
		return out, nil
	}
	var resp onepassword.ItemsGetAllResponse
	if err := l.call(ctx, func(ctx context.Context) error {
		var err error
		resp, err = l.c.Items().GetAll(ctx, vaultID, ids)
		return err
	}); err != nil {
		return nil, err
	}
	// Answers are matched to requests by the item ID they carry, never by
	// position: the SDK answers a batch with one entry per item the service
	// returned, and an item the service leaves out (deleted, archived, or
	// never there) has no entry at all, so positions shift. An error entry
	// carries no ID; it can only be placed when it is the one error and
	// exactly one item is unanswered.
	var errs []*onepassword.ItemsGetAllError
	for _, r := range resp.IndividualResponses {
		switch {
		case r.Content != nil:
			item := *r.Content
			if contains(ids, item.ID) {
				out[item.ID] = itemResult{item: &item}
			}
		default:
			errs = append(errs, r.Error)
		}
	}
	var missing []string
	for _, id := range ids {
		if _, ok := out[id]; !ok {
			missing = append(missing, id)
		}
	}
	for _, id := range missing {
		switch {
		case len(errs) == 1 && len(missing) == 1:
			out[id] = itemResult{err: l.getAllError(errs[0])}
		case len(errs) == 0:
			out[id] = itemResult{err: &Error{Class: ClassNotFound,
				Msg: "1Password did not return the item (deleted or archived just now?); check 1Password"}}
		default:
			out[id] = itemResult{err: &Error{Class: ClassOther,
				Msg: fmt.Sprintf("1Password could not read %d of the %d items asked for in one batch and did not say which error is whose; try again, and report it if it persists", len(missing), len(ids))}}
		}
	}
	return out, nil
}

func (l *locator) getAllError(e *onepassword.ItemsGetAllError) *Error {
	if e == nil {
		return &Error{Class: ClassOther, Msg: "1Password returned neither the item nor an error; try again, and report it if it persists"}
	}
	switch e.Type {
	case onepassword.ItemsGetAllErrorTypeVariantItemNotFound:
		return &Error{Class: ClassNotFound, Msg: "the item disappeared while it was being read (deleted or archived just now?); check 1Password"}
	default:
		detail := capDetail(l.o.scrub.clean(safeMessage(e.Internal)))
		return &Error{Class: ClassOther, Msg: "1Password could not read the item: " + detail}
	}
}

// readFiles fills out[i] for each i in idx through the items API: Document
// items, files that Resolve refused, and in one-pass mode every reference.
// The items of one vault are read in one request; each file is then two
// more (the SDK reads the item again, then the file), and a field none.
func (o *Client) readFiles(ctx context.Context, c *onepassword.Client, refs []Ref, idx []int, out []Result, known Known) {
	l := o.locator(c)
	type want struct {
		i               int
		vaultID, itemID string
	}
	var wants []want
	need := map[string][]string{} // vault ID -> distinct item IDs
	for _, i := range idx {
		r := refs[i]
		vaultID, err := l.vault(ctx, r.Vault)
		var itemID string
		if err == nil {
			itemID, err = l.item(ctx, vaultID, r)
		}
		if err != nil {
			out[i].Err = forRef(err, r)
			continue
		}
		wants = append(wants, want{i, vaultID, itemID})
		if !contains(need[vaultID], itemID) {
			need[vaultID] = append(need[vaultID], itemID)
		}
	}

	vaultIDs := make([]string, 0, len(need))
	for v := range need {
		vaultIDs = append(vaultIDs, v)
	}
	sort.Strings(vaultIDs)
	got := map[string]map[string]itemResult{}
	failed := map[string]*Error{}
	for _, v := range vaultIDs {
		m, err := l.getAll(ctx, v, need[v])
		if err != nil {
			failed[v] = err
			continue
		}
		got[v] = m
	}

	for _, w := range wants {
		r := refs[w.i]
		if err := failed[w.vaultID]; err != nil {
			out[w.i].Err = forRef(err, r)
			continue
		}
		res := got[w.vaultID][w.itemID]
		rd := l.readRef(ctx, w.vaultID, res, r, known)
		if rd.err != nil {
			out[w.i].Err = rd.err
			continue
		}
		out[w.i].Value, out[w.i].Version, out[w.i].Unchanged = rd.value, rd.version, rd.unchanged
	}
}

// read is what readRef found for one reference.
type read struct {
	value     []byte
	version   string // the item's ID and version (itemVersion)
	unchanged bool   // a file or Document not downloaded: still at the known version
	err       *Error
}

// readRef reads what r names (see findTarget) from an item of a batch. A
// file or Document is downloaded only when known does not give the item's
// current version for r: the batch read that brought the item tells its
// version for free, while the download costs two requests. A field's value
// comes with the item, so it is always returned.
func (l *locator) readRef(ctx context.Context, vaultID string, res itemResult, r Ref, known Known) read {
	if res.err != nil {
		return read{err: forRef(res.err, r)}
	}
	if res.item == nil {
		return read{err: &Error{Class: ClassOther, Ref: r.String(), Msg: "1Password returned no item; try again, and report it if it persists"}}
	}
	t, err := findTarget(res.item, r)
	if err != nil {
		return read{err: err}
	}
	version := itemVersion(res.item)
	if t.field < 0 && known[r.String()] == version {
		return read{version: version, unchanged: true}
	}
	v, err := l.valueOf(ctx, vaultID, res.item, t, r)
	return read{value: v, version: version, err: err}
}

// itemVersion names an item at its version. The ID is part of it: an item
// deleted and made again under the same title starts again at version 1.
func itemVersion(it *onepassword.Item) string {
	return it.ID + "@" + strconv.FormatUint(uint64(it.Version), 10)
}

// target is what a reference names inside an item: one of a text field, a
// file attached to the item, or the Document item's own file.
type target struct {
	field int  // index in Item.Fields, or -1
	file  int  // index in Item.Files, or -1
	doc   bool // the item's Document file
}

// findTarget finds what r names in it. A Document reference names the
// item's file. A field reference names a field, matched by ID or title, or
// a file, matched by ID, field ID or name, in a section matched by ID or
// title, all without regard to case, as 1Password's references do. A
// Document item's own file counts too, so op://vault/doc/name.json works as
// well as op://vault/doc.
func findTarget(it *onepassword.Item, r Ref) (target, *Error) {
	none := target{field: -1, file: -1}
	if r.IsDocument() {
		if it.Document == nil {
			return none, &Error{Class: ClassNotFound, Ref: r.String(),
				Msg: fmt.Sprintf("item %q is a %s item, not a Document; name the field or file in the reference: op://%s/%s/<field>", r.Item, it.Category, r.Vault, r.Item)}
		}
		return target{field: -1, file: -1, doc: true}, nil
	}
	if r.Section != "" && !hasSection(it.Sections, r.Section) {
		return none, &Error{Class: ClassNotFound, Ref: r.String(),
			Msg: fmt.Sprintf("item %q has no section named %q; check the name", r.Item, r.Section)}
	}
	var found []target
	for i, f := range it.Fields {
		sec := ""
		if f.SectionID != nil {
			sec = *f.SectionID
		}
		if (f.ID == r.Field || strings.EqualFold(f.Title, r.Field)) && sectionMatches(it.Sections, sec, r.Section) {
			found = append(found, target{field: i, file: -1})
		}
	}
	for i, f := range it.Files {
		if fileMatches(f.Attributes, f.FieldID, r.Field) && sectionMatches(it.Sections, f.SectionID, r.Section) {
			found = append(found, target{field: -1, file: i})
		}
	}
	if it.Document != nil && r.Section == "" && fileMatches(*it.Document, "", r.Field) {
		found = append(found, target{field: -1, file: -1, doc: true})
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return none, &Error{Class: ClassNotFound, Ref: r.String(),
			Msg: fmt.Sprintf("item %q has no field or file named %q; check the name (a whole Document item is referenced as op://%s/%s)", r.Item, r.Field, r.Vault, r.Item)}
	default:
		return none, &Error{Class: ClassNotFound, Ref: r.String(),
			Msg: fmt.Sprintf("item %q has %d fields or files named %q; add the section to the reference, use the field's ID, or rename one", r.Item, len(found), r.Field)}
	}
}

// valueOf returns what t holds in it: a field's value, or a file's content
// (one more read of the item and a download).
func (l *locator) valueOf(ctx context.Context, vaultID string, it *onepassword.Item, t target, r Ref) ([]byte, *Error) {
	switch {
	case t.field >= 0:
		return []byte(it.Fields[t.field].Value), nil
	case t.file >= 0:
		return l.readFile(ctx, vaultID, it.ID, it.Files[t.file].Attributes, r)
	default:
		return l.readFile(ctx, vaultID, it.ID, *it.Document, r)
	}
}

func hasSection(sections []onepassword.ItemSection, want string) bool {
	for _, s := range sections {
		if s.ID == want || strings.EqualFold(s.Title, want) {
			return true
		}
	}
	return false
}

func (l *locator) readFile(ctx context.Context, vaultID, itemID string, attrs onepassword.FileAttributes, r Ref) ([]byte, *Error) {
	var b []byte
	if err := l.call(ctx, func(ctx context.Context) error {
		var err error
		b, err = l.c.Items().Files().Read(ctx, vaultID, itemID, attrs)
		return err
	}); err != nil {
		return nil, forRef(err, r)
	}
	if b == nil {
		b = []byte{} // an empty file is content, not an absence
	}
	return b, nil
}

func fileMatches(a onepassword.FileAttributes, fieldID, name string) bool {
	return a.ID == name || (fieldID != "" && fieldID == name) || strings.EqualFold(a.Name, name)
}

func sectionMatches(sections []onepassword.ItemSection, sectionID, want string) bool {
	if want == "" || sectionID == want {
		return true
	}
	for _, s := range sections {
		if s.ID == sectionID && strings.EqualFold(s.Title, want) {
			return true
		}
	}
	return false
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
