package onepassword

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"unicode/utf8"

	onepassword "github.com/1password/onepassword-sdk-go"
	"github.com/veraticus/egoengine/internal/secrets/source"
)

var _ source.Writer = (*Client)(nil)

// writeTries bounds how often Replace reads and writes again when its write
// met another writer's change that left ref holding old (an edit of another
// field of the item): each try is at least three requests.
const writeTries = 3

// Replace writes value where r points when r still holds old (see
// source.Writer): a text field (Items().Put), a file attached to the item
// (Files().Attach of the new file, then Files().Delete of the old one: the
// SDK has no call that replaces an attachment), or a Document's file
// (Files().ReplaceDocument).
//
// The item is read afresh with Items().Get, never taken from what the pass
// read before (the vault's ID and the item's ID may be); only then is the
// write sent. A write whose base another writer changed in between is
// refused by 1Password (the SDK checks the item's version against its own
// read, the service against the stored one); Replace then reads again, and
// returns a *Conflict when r no longer holds old.
//
// Cost in HTTP requests (seen against opservice): the item read 1 (and
// the vault list and item list, unless the pass has read them), a file's
// current content 2 (the SDK reads the item again, then downloads), then a
// field's Put 3, a Document's ReplaceDocument 4, an attachment 7 (Attach
// 4, Delete 3): 4, 7 and 10 in all. A refused stale write adds a read.
func (o *Client) Replace(ctx context.Context, r Ref, old, value []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	l, vaultID, itemID, err := o.locate(ctx, r)
	if err != nil {
		return err
	}
	// Whatever happens now, what the pass read of this item is out of date.
	defer l.forget(vaultID, itemID)
	for try := 0; try < writeTries; try++ {
		it, t, cur, err := l.fresh(ctx, vaultID, itemID, r)
		if err != nil {
			return err
		}
		if !bytes.Equal(cur, old) {
			return &Conflict{Ref: r, Current: cur}
		}
		stale, werr := l.write(ctx, it, t, value, r)
		if werr != nil || !stale {
			return errOrNil(werr)
		}
	}
	return &Error{Class: ClassOther, Ref: r.String(),
		Msg: fmt.Sprintf("the item changed while egoagent wrote to it, each of %d times; nothing was written; the next pass tries again", writeTries)}
}

// locate signs in if need be and finds r's vault and item, from what the
// pass has listed. Callers hold o.mu.
func (o *Client) locate(ctx context.Context, r Ref) (*locator, string, string, error) {
	c, err := o.ready(ctx)
	if err != nil {
		return nil, "", "", forRef(err, r)
	}
	l := o.locator(c)
	vaultID, err := l.vault(ctx, r.Vault)
	if err != nil {
		return nil, "", "", forRef(err, r)
	}
	itemID, err := l.item(ctx, vaultID, r)
	if err != nil {
		return nil, "", "", forRef(err, r)
	}
	return l, vaultID, itemID, nil
}

// fresh reads item itemID afresh with Items().Get, never from what the pass
// read before, and returns it, r's place in it and the value there.
func (l *locator) fresh(ctx context.Context, vaultID, itemID string, r Ref) (onepassword.Item, target, []byte, error) {
	it, err := l.get(ctx, vaultID, itemID)
	if err != nil {
		return it, target{}, nil, forRef(err, r)
	}
	t, e := findTarget(&it, r)
	if e != nil {
		return it, t, nil, e
	}
	cur, e := l.valueOf(ctx, vaultID, &it, t, r)
	if e != nil {
		return it, t, nil, e
	}
	return it, t, cur, nil
}

// get reads one item with Items().Get: afresh, never from what the pass
// read before (which it also leaves alone).
func (l *locator) get(ctx context.Context, vaultID, itemID string) (onepassword.Item, *Error) {
	var it onepassword.Item
	err := l.call(ctx, func(ctx context.Context) error {
		var err error
		it, err = l.c.Items().Get(ctx, vaultID, itemID)
		return err
	})
	return it, err
}

// errOrNil keeps a nil *Error from becoming a non-nil error.
func errOrNil(e *Error) error {
	if e == nil {
		return nil
	}
	return e
}

// forget drops what the locator read of an item, so that a later read in
// the same pass sees it as it is after a write.
func (l *locator) forget(vaultID, itemID string) {
	delete(l.read[vaultID], itemID)
}

// write sends value to t of it, the item as just read. stale reports that
// 1Password refused the write because the item had changed since.
func (l *locator) write(ctx context.Context, it onepassword.Item, t target, value []byte, r Ref) (stale bool, err *Error) {
	switch {
	case t.field >= 0:
		// A field holds a string; the SDK would turn bytes that are not
		// UTF-8 into U+FFFD on the way, writing something else.
		if !utf8.Valid(value) {
			return false, &Error{Class: ClassOther, Ref: r.String(),
				Msg: fmt.Sprintf("field %q of item %q holds text, and this value is not UTF-8; keep it in a file attached to the item instead", r.Field, r.Item)}
		}
		it.Fields[t.field].Value = string(value)
		return l.writeCall(ctx, r, func(ctx context.Context) error {
			_, err := l.c.Items().Put(ctx, it)
			return err
		})
	case t.doc:
		return l.writeCall(ctx, r, func(ctx context.Context) error {
			_, err := l.c.Items().Files().ReplaceDocument(ctx, it, onepassword.DocumentCreateParams{Name: it.Document.Name, Content: value})
			return err
		})
	}
	// An attachment: the new file goes in beside the old one first, so that
	// a failure between the two writes leaves a value in 1Password, never
	// none.
	f := it.Files[t.file]
	var next onepassword.Item
	stale, err = l.writeCall(ctx, r, func(ctx context.Context) error {
		var err error
		next, err = l.c.Items().Files().Attach(ctx, it, onepassword.FileCreateParams{
			Name: f.Attributes.Name, Content: value, SectionID: f.SectionID, FieldID: newFieldID()})
		return err
	})
	if stale || err != nil {
		return stale, err
	}
	// Another writer may change the item between the two writes: then the
	// old file is removed from the item as it is now.
	for try := 0; try < writeTries; try++ {
		if try > 0 {
			var e *Error
			if next, e = l.get(ctx, it.VaultID, it.ID); e != nil {
				err = e
				break
			}
		}
		stale, err = l.writeCall(ctx, r, func(ctx context.Context) error {
			_, err := l.c.Items().Files().Delete(ctx, next, f.SectionID, f.FieldID)
			return err
		})
		if !stale {
			break
		}
	}
	if stale || err != nil {
		why := "the item kept changing"
		if err != nil {
			why = err.Msg
		}
		return false, &Error{Class: ClassOther, Ref: r.String(),
			Msg: fmt.Sprintf("the new file is attached to item %q, but the old one could not be removed (%s): the item now holds two files named %q; delete the older one in 1Password", r.Item, why, f.Attributes.Name)}
	}
	return false, nil
}

// writeCall runs one write against 1Password with the per-request deadline,
// counting it. A refusal because the item changed is reported as stale, not
// as an error; other errors are classified as a write's.
func (l *locator) writeCall(ctx context.Context, r Ref, f func(ctx context.Context) error) (stale bool, e *Error) {
	if l.fatal != nil {
		return false, forRef(l.fatal, r)
	}
	l.o.calls.Add(1)
	cctx, cancel := context.WithTimeout(ctx, l.o.timeout)
	defer cancel()
	err := f(cctx)
	if err == nil {
		return false, nil
	}
	if ctx.Err() == nil && cctx.Err() == nil && staleWrite(err.Error()) {
		return true, nil
	}
	e = l.o.classifyWrite(ctx, cctx, err)
	if stopsPass(e) {
		l.fatal = e
	}
	if e.Class == ClassReadOnly {
		e.Msg = fmt.Sprintf("service account may read vault %q but not write to it (%s): give it write access to that vault in 1Password (Developer > Service Accounts), or set write_back = false for this secret", r.Vault, e.Err)
	}
	return false, forRef(e, r)
}

// staleWrite reports whether an SDK error says that the item changed since
// it was read. Each text was seen from SDK v0.4.1 against a local service:
// the SDK's own check of the Item it is given against its fresh read (Put:
// "the submitted item is not up to date"; Files(): "cannot update items
// through other functions than Items.Put"), and the service's refusal of a
// stale item version (HTTP 409, or code 104 in failedItems: "data conflict
// occurred on the server: ...").
func staleWrite(text string) bool {
	text = strings.ToLower(text)
	for _, n := range []string{
		"not up to date",
		"cannot update items through other functions than items.put",
		"conflict occurred on the server",
	} {
		if strings.Contains(text, n) {
			return true
		}
	}
	return false
}

// newFieldID makes the ID of an attachment's field: 26 characters of
// [a-z0-9], the shape of every ID 1Password gives.
func newFieldID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 26)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
