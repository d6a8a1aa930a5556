package onepassword

import (
	"context"
	"fmt"
	"strings"

	onepassword "github.com/1password/onepassword-sdk-go"
	"github.com/veraticus/egoengine/internal/secrets/source"
)

var _ source.Leaser = (*Client)(nil)

// LeaseTitle is the title of the Secure Note that keeps the lease record
// for item, in item's vault. It is an item of its own, not a field of the
// login's item: a write of the lease then never rewrites the login's item,
// so it can never put back an older auth.json over a newer one.
func LeaseTitle(item string) string { return item + " (egoagent lease)" }

// leaseField is the ID and title of the field that holds the record.
const leaseField = "lease"

const leaseNote = "Kept by egoagent: which workspace renews the login beside it, and how far it got. " +
	"Nothing in it is secret. Deleting it is harmless; egoagent makes it again."

// Current reads the value at r afresh, as Replace does before it writes:
// the item again (two requests), and a file's content (two more).
func (o *Client) Current(ctx context.Context, r Ref) ([]byte, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	l, vaultID, itemID, err := o.locate(ctx, r)
	if err != nil {
		return nil, err
	}
	_, _, v, err := l.fresh(ctx, vaultID, itemID, r)
	return v, err
}

// ReadLease returns the record of the lease item for r's item, read afresh:
// the vault's item list and the item itself are read again, never taken
// from earlier in the pass. It costs three requests (the list, then the
// vault and the item, as Items().Get reads them); "" when there is no
// lease item.
func (o *Client) ReadLease(ctx context.Context, r Ref) (string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	c, err := o.ready(ctx)
	if err != nil {
		return "", forRef(err, r)
	}
	it, _, e := o.locator(c).lease(ctx, r)
	if e != nil {
		return "", e
	}
	if it == nil {
		return "", nil
	}
	for _, f := range it.Fields {
		if f.ID == leaseField {
			return f.Value, nil
		}
	}
	return "", nil
}

// WriteLease replaces the record, creating the lease item when there is
// none (two requests), else with Items().Put (three more after the read).
// Two workspaces may create one each at the same moment: every reader and
// writer then uses the one with the lowest ID, so they still agree on one.
func (o *Client) WriteLease(ctx context.Context, r Ref, record string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	c, err := o.ready(ctx)
	if err != nil {
		return forRef(err, r)
	}
	l := o.locator(c)
	it, vaultID, e := l.lease(ctx, r)
	if e != nil {
		return e
	}
	field := onepassword.ItemField{ID: leaseField, Title: leaseField, FieldType: onepassword.ItemFieldTypeText, Value: record}
	if it == nil {
		note := leaseNote
		_, e := l.writeCall(ctx, r, func(ctx context.Context) error {
			_, err := l.c.Items().Create(ctx, onepassword.ItemCreateParams{
				Category: onepassword.ItemCategorySecureNote, VaultID: vaultID, Title: LeaseTitle(r.Item),
				Fields: []onepassword.ItemField{field}, Notes: &note,
			})
			return err
		})
		return errOrNil(e)
	}
	set := false
	for i := range it.Fields {
		if it.Fields[i].ID == leaseField {
			it.Fields[i].Value, set = record, true
		}
	}
	if !set {
		it.Fields = append(it.Fields, field)
	}
	stale, e := l.writeCall(ctx, r, func(ctx context.Context) error {
		_, err := l.c.Items().Put(ctx, *it)
		return err
	})
	if stale {
		// Another workspace wrote the lease between our read and our write.
		// Its write stands; ours did not happen.
		return &Error{Class: ClassOther, Ref: r.String(), Msg: fmt.Sprintf("item %q changed while egoagent wrote to it; the lease was not written", LeaseTitle(r.Item))}
	}
	return errOrNil(e)
}

// lease finds and reads the lease item of r's item afresh. It returns nil
// when there is none.
func (l *locator) lease(ctx context.Context, r Ref) (*onepassword.Item, string, *Error) {
	vaultID, err := l.vault(ctx, r.Vault)
	if err != nil {
		return nil, "", forRef(err, r)
	}
	// Fresh: another workspace may have made the item since this pass
	// listed the vault.
	delete(l.lists, vaultID)
	its, err := l.items(ctx, vaultID)
	if err != nil {
		return nil, "", forRef(err, r)
	}
	title, id := LeaseTitle(r.Item), ""
	for _, ov := range its {
		if strings.EqualFold(ov.Title, title) && (id == "" || ov.ID < id) {
			id = ov.ID
		}
	}
	if id == "" {
		return nil, vaultID, nil
	}
	it, err := l.get(ctx, vaultID, id)
	if err != nil {
		return nil, "", forRef(err, r)
	}
	l.forget(vaultID, id)
	return &it, vaultID, nil
}
