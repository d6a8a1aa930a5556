package onepassword

import (
	"context"
	"fmt"
	"sort"
	"strings"

	onepassword "github.com/1password/onepassword-sdk-go"
)

// locator finds vaults, items and files through the SDK's items API for one
// Fetch or Documents call. It lists each vault's items at most once per call
// and never across calls, so a pass always sees the vault as it is now.
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

// getAll reads full items (fields, files, document) in one request.
func (l *locator) getAll(ctx context.Context, vaultID string, ids []string) (map[string]itemResult, *Error) {
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
	for i, r := range resp.IndividualResponses {
		switch {
		case r.Content != nil:
			item := *r.Content
			out[item.ID] = itemResult{item: &item}
		case i < len(ids):
			// An error carries no item ID; the answers come in the order of
			// the request, which is the only way to tell whose it is.
			out[ids[i]] = itemResult{err: l.getAllError(r.Error)}
		}
	}
	for _, id := range ids {
		if _, ok := out[id]; !ok {
			out[id] = itemResult{err: &Error{Class: ClassOther,
				Msg: "1Password's batched item read had no entry for this item; try again, and report it if it persists"}}
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

// readFiles fills out[i] for each i in idx: Document items and files that
// Resolve refused. All items of one vault are read in one request; each file
// is then one more.
func (o *Client) readFiles(ctx context.Context, c *onepassword.Client, refs []Ref, idx []int, out []Result) {
	l := &locator{o: o, c: c}
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
		var v []byte
		var err *Error
		if r.IsDocument() {
			v, err = l.readDocument(ctx, w.vaultID, res, r)
		} else {
			v, err = l.readAttachment(ctx, w.vaultID, res, r)
		}
		if err != nil {
			out[w.i].Err = err
			continue
		}
		out[w.i].Value = v
	}
}

// readDocument reads the file of a Document item.
func (l *locator) readDocument(ctx context.Context, vaultID string, res itemResult, r Ref) ([]byte, *Error) {
	if res.err != nil {
		return nil, forRef(res.err, r)
	}
	if res.item == nil {
		return nil, &Error{Class: ClassOther, Ref: r.String(), Msg: "1Password returned no item; try again, and report it if it persists"}
	}
	if res.item.Document == nil {
		return nil, &Error{Class: ClassNotFound, Ref: r.String(),
			Msg: fmt.Sprintf("item %q is a %s item, not a Document; name the field or file in the reference: op://%s/%s/<field>", r.Item, res.item.Category, r.Vault, r.Item)}
	}
	return l.read(ctx, vaultID, res.item.ID, *res.item.Document, r)
}

// readAttachment reads the file named by r's field (and section) from an
// item. A Document item's own file counts too, so op://vault/doc/name.json
// works as well as op://vault/doc.
func (l *locator) readAttachment(ctx context.Context, vaultID string, res itemResult, r Ref) ([]byte, *Error) {
	if res.err != nil {
		return nil, forRef(res.err, r)
	}
	if res.item == nil {
		return nil, &Error{Class: ClassOther, Ref: r.String(), Msg: "1Password returned no item; try again, and report it if it persists"}
	}
	it := res.item
	var found []onepassword.FileAttributes
	for _, f := range it.Files {
		if fileMatches(f.Attributes, f.FieldID, r.Field) && sectionMatches(it.Sections, f.SectionID, r.Section) {
			found = append(found, f.Attributes)
		}
	}
	if it.Document != nil && r.Section == "" && fileMatches(*it.Document, "", r.Field) {
		found = append(found, *it.Document)
	}
	switch len(found) {
	case 1:
		return l.read(ctx, vaultID, it.ID, found[0], r)
	case 0:
		// Resolve said this reference names a file it cannot return as
		// text, so the file should be here; the item changed in between.
		return nil, &Error{Class: ClassNotFound, Ref: r.String(),
			Msg: fmt.Sprintf("item %q has no file named %q (it may have changed just now); check the file's name in 1Password", r.Item, r.Field)}
	default:
		return nil, &Error{Class: ClassNotFound, Ref: r.String(),
			Msg: fmt.Sprintf("item %q has %d files named %q; name a section in the reference, or rename one", r.Item, len(found), r.Field)}
	}
}

func (l *locator) read(ctx context.Context, vaultID, itemID string, attrs onepassword.FileAttributes, r Ref) ([]byte, *Error) {
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
