package source

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"

	"github.com/veraticus/egoengine/internal/secrets/renew"
)

// Process is a Source served by a helper process: egoagent-op, which links
// the 1Password SDK so that egoagent does not have to (see package
// onepassword for why). The helper is started on first use, lives for the
// pass, and exits when Close closes its stdin. It inherits the environment,
// which is how it gets OP_SERVICE_ACCOUNT_TOKEN: the token never appears in
// its arguments. Values travel over the pipe, never through a file.
type Process struct {
	Path string   // the helper executable
	Args []string // its arguments

	mu    sync.Mutex
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *json.Decoder
	dead  error
	calls int
}

// NewProcess returns a Source served by the helper at path.
func NewProcess(path string, args ...string) *Process { return &Process{Path: path, Args: args} }

// The helper protocol: one JSON request per line on the helper's stdin, one
// JSON response per line on its stdout.
type wireRequest struct {
	Op     string `json:"op"` // "fetch", "documents", "replace", "current", "read-lease", "write-lease" or "refresh-login"
	Refs   []Ref  `json:"refs,omitempty"`
	Vault  string `json:"vault,omitempty"`
	Prefix string `json:"prefix,omitempty"`
	// fetch and documents: what the caller has (see Versioned). A helper
	// from before it ignores it and sends every value.
	Known Known `json:"known,omitempty"`
	// replace: write Value where Ref points if it still holds Old.
	Ref   *Ref   `json:"ref,omitempty"`
	Old   []byte `json:"old,omitempty"`
	Value []byte `json:"value,omitempty"`
	// write-lease: the record.
	Lease string `json:"lease,omitempty"`
}

type wireError struct {
	Class Class  `json:"class"`
	Ref   string `json:"ref,omitempty"`
	Msg   string `json:"msg"`
	Fate  string `json:"fate,omitempty"` // refresh-login: a *renew.CallError's
}

type wireResult struct {
	Value     []byte     `json:"value,omitempty"`
	Err       *wireError `json:"err,omitempty"`
	Version   string     `json:"version,omitempty"`
	Unchanged bool       `json:"unchanged,omitempty"`
}

type wireDocument struct {
	Title     string     `json:"title"`
	Content   []byte     `json:"content,omitempty"`
	Err       *wireError `json:"err,omitempty"`
	Version   string     `json:"version,omitempty"`
	Unchanged bool       `json:"unchanged,omitempty"`
}

type wireResponse struct {
	Results   []wireResult   `json:"results,omitempty"`
	Documents []wireDocument `json:"documents,omitempty"`
	Err       *wireError     `json:"err,omitempty"`
	Conflict  *wireConflict  `json:"conflict,omitempty"` // replace found another value
	Calls     int            `json:"calls"`              // the helper's running total
	Lease     string         `json:"lease,omitempty"`    // read-lease: the record
	Value     []byte         `json:"value,omitempty"`    // current: the value
}

// wireConflict is a *Conflict on the pipe. Current has no omitempty: an
// empty value is a value, and must not come back as none.
type wireConflict struct {
	Current []byte `json:"current"`
}

func toWire(err error) *wireError {
	if err == nil {
		return nil
	}
	var ce *renew.CallError
	if errors.As(err, &ce) {
		return &wireError{Class: ClassOther, Msg: ce.Msg, Fate: string(ce.Fate)}
	}
	var e *Error
	if errors.As(err, &e) {
		return &wireError{Class: e.Class, Ref: e.Ref, Msg: e.Msg}
	}
	return &wireError{Class: ClassOther, Msg: err.Error()}
}

func fromWire(w *wireError) error {
	if w == nil {
		return nil
	}
	if w.Fate != "" {
		return &renew.CallError{Fate: renew.Fate(w.Fate), Msg: w.Msg}
	}
	return &Error{Class: w.Class, Ref: w.Ref, Msg: w.Msg}
}

// Serve answers helper requests from r on w with src until r ends. It is
// the helper's side of Process.
func Serve(ctx context.Context, r io.Reader, w io.Writer, src Source) error {
	dec := json.NewDecoder(bufio.NewReader(r))
	enc := json.NewEncoder(w)
	for {
		var req wireRequest
		if err := dec.Decode(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("bad request: %w", err)
		}
		var resp wireResponse
		switch req.Op {
		case "fetch":
			for _, res := range FetchKnown(ctx, src, req.Refs, req.Known) {
				resp.Results = append(resp.Results, wireResult{Value: res.Value, Err: toWire(res.Err), Version: res.Version, Unchanged: res.Unchanged})
			}
		case "documents":
			docs, err := DocumentsKnown(ctx, src, req.Vault, req.Prefix, req.Known)
			resp.Err = toWire(err)
			for _, d := range docs {
				resp.Documents = append(resp.Documents, wireDocument{Title: d.Title, Content: d.Content, Err: toWire(d.Err), Version: d.Version, Unchanged: d.Unchanged})
			}
		case "replace":
			resp.Err, resp.Conflict = serveReplace(ctx, src, req)
		case "current", "read-lease", "write-lease":
			resp.Value, resp.Lease, resp.Err = serveLease(ctx, src, req)
		case "refresh-login":
			if r, ok := src.(Refresher); ok {
				v, err := r.RefreshLogin(ctx, req.Value)
				resp.Value, resp.Err = v, toWire(err)
			} else {
				resp.Err = &wireError{Class: ClassOther, Msg: fmt.Sprintf("the helper's source (%T) cannot renew logins; turn renew off", src)}
			}
		default:
			resp.Err = &wireError{Class: ClassOther, Msg: fmt.Sprintf("unknown request %q", req.Op)}
		}
		resp.Calls = src.Calls()
		if err := enc.Encode(&resp); err != nil {
			return err
		}
	}
}

func serveReplace(ctx context.Context, src Source, req wireRequest) (*wireError, *wireConflict) {
	w, ok := src.(Writer)
	switch {
	case !ok:
		return &wireError{Class: ClassOther, Msg: fmt.Sprintf("the helper's source (%T) cannot write; turn write-back off", src)}, nil
	case req.Ref == nil:
		return &wireError{Class: ClassOther, Msg: "a replace request without a reference"}, nil
	}
	err := w.Replace(ctx, *req.Ref, req.Old, req.Value)
	var c *Conflict
	if errors.As(err, &c) {
		return nil, &wireConflict{Current: c.Current}
	}
	return toWire(err), nil
}

func serveLease(ctx context.Context, src Source, req wireRequest) ([]byte, string, *wireError) {
	l, ok := src.(Leaser)
	switch {
	case !ok:
		return nil, "", &wireError{Class: ClassOther, Msg: fmt.Sprintf("the helper's source (%T) keeps no leases; turn renew off", src)}
	case req.Ref == nil:
		return nil, "", &wireError{Class: ClassOther, Msg: "a lease request without a reference"}
	case req.Op == "current":
		v, err := l.Current(ctx, *req.Ref)
		return v, "", toWire(err)
	case req.Op == "read-lease":
		rec, err := l.ReadLease(ctx, *req.Ref)
		return nil, rec, toWire(err)
	default:
		return nil, "", toWire(l.WriteLease(ctx, *req.Ref, req.Lease))
	}
}

var (
	_ Writer = (*Process)(nil)
	_ Leaser = (*Process)(nil)
)

var _ Refresher = (*Process)(nil)

// RefreshLogin asks the helper to renew the login in current at its token
// endpoint; the helper reads the endpoint's address from its environment.
func (p *Process) RefreshLogin(ctx context.Context, current []byte) ([]byte, error) {
	resp, err := p.roundTrip(ctx, wireRequest{Op: "refresh-login", Value: current})
	if err != nil {
		// The helper stopped answering: whether the call went out is not
		// known.
		return nil, &renew.CallError{Fate: renew.Unknown, Msg: err.Error()}
	}
	return resp.Value, fromWire(resp.Err)
}

// Current asks the helper for the value at ref, read afresh.
func (p *Process) Current(ctx context.Context, ref Ref) ([]byte, error) {
	resp, err := p.roundTrip(ctx, wireRequest{Op: "current", Ref: &ref})
	if err != nil {
		return nil, err
	}
	return resp.Value, fromWire(resp.Err)
}

// ReadLease asks the helper for the lease record beside ref's item.
func (p *Process) ReadLease(ctx context.Context, ref Ref) (string, error) {
	resp, err := p.roundTrip(ctx, wireRequest{Op: "read-lease", Ref: &ref})
	if err != nil {
		return "", err
	}
	return resp.Lease, fromWire(resp.Err)
}

// WriteLease asks the helper to replace the lease record beside ref's item.
func (p *Process) WriteLease(ctx context.Context, ref Ref, record string) error {
	resp, err := p.roundTrip(ctx, wireRequest{Op: "write-lease", Ref: &ref, Lease: record})
	if err != nil {
		return err
	}
	return fromWire(resp.Err)
}

// Replace asks the helper to replace the value at ref (see Writer). The
// helper reads the item afresh itself; a *Conflict and the class of an
// error come back as the helper's source returned them.
func (p *Process) Replace(ctx context.Context, ref Ref, old, value []byte) error {
	resp, err := p.roundTrip(ctx, wireRequest{Op: "replace", Ref: &ref, Old: old, Value: value})
	if err != nil {
		return err
	}
	if resp.Conflict != nil {
		return &Conflict{Ref: ref, Current: resp.Conflict.Current}
	}
	return fromWire(resp.Err)
}

func (p *Process) Calls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}

func (p *Process) Fetch(ctx context.Context, refs []Ref) []Result {
	return p.FetchKnown(ctx, refs, nil)
}

func (p *Process) FetchKnown(ctx context.Context, refs []Ref, known Known) []Result {
	out := make([]Result, len(refs))
	for i, r := range refs {
		out[i].Ref = r
	}
	resp, err := p.roundTrip(ctx, wireRequest{Op: "fetch", Refs: refs, Known: known})
	if err == nil && len(resp.Results) != len(refs) {
		err = &Error{Class: ClassOther, Msg: fmt.Sprintf("the 1Password helper answered %d results for %d references", len(resp.Results), len(refs))}
	}
	for i := range out {
		if err != nil {
			out[i].Err = err
			continue
		}
		r := resp.Results[i]
		out[i].Value, out[i].Err, out[i].Version, out[i].Unchanged = r.Value, fromWire(r.Err), r.Version, r.Unchanged
	}
	return out
}

func (p *Process) Documents(ctx context.Context, vault, prefix string) ([]Document, error) {
	return p.DocumentsKnown(ctx, vault, prefix, nil)
}

func (p *Process) DocumentsKnown(ctx context.Context, vault, prefix string, known Known) ([]Document, error) {
	resp, err := p.roundTrip(ctx, wireRequest{Op: "documents", Vault: vault, Prefix: prefix, Known: known})
	if err != nil {
		return nil, err
	}
	if resp.Err != nil {
		return nil, fromWire(resp.Err)
	}
	docs := make([]Document, len(resp.Documents))
	for i, d := range resp.Documents {
		docs[i] = Document{Title: d.Title, Content: d.Content, Err: fromWire(d.Err), Version: d.Version, Unchanged: d.Unchanged}
	}
	return docs, nil
}

// roundTrip sends one request and waits for its answer, or for ctx: then
// the helper is killed, since it cannot be interrupted mid-request.
func (p *Process) roundTrip(ctx context.Context, req wireRequest) (wireResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.start(); err != nil {
		return wireResponse{}, err
	}
	type answer struct {
		resp wireResponse
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		var a answer
		if a.err = json.NewEncoder(p.in).Encode(req); a.err == nil {
			a.err = p.out.Decode(&a.resp)
		}
		done <- a
	}()
	select {
	case a := <-done:
		if a.err != nil {
			p.stop(fmt.Errorf("the 1Password helper %s stopped answering: %v", p.Path, a.err))
			return wireResponse{}, p.dead
		}
		p.calls = a.resp.Calls
		return a.resp, nil
	case <-ctx.Done():
		p.stop(&Error{Class: ClassUnreachable, Msg: "gave up waiting for 1Password: " + ctx.Err().Error(), Err: ctx.Err()})
		<-done
		return wireResponse{}, p.dead
	}
}

func (p *Process) start() error {
	if p.dead != nil {
		return p.dead
	}
	if p.cmd != nil {
		return nil
	}
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Stderr = os.Stderr // its log joins ours; it never logs values
	// The helper must never outlive its egoagent, however that one ends
	// (SIGKILL included): the kernel kills it then. It holds nothing that
	// a kill can damage.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		p.dead = &Error{Class: ClassOther, Msg: fmt.Sprintf("cannot start the 1Password helper %s: %v; it ships beside egoagent (make build, or the image)", p.Path, err), Err: err}
		return p.dead
	}
	p.cmd, p.in, p.out = cmd, in, json.NewDecoder(bufio.NewReader(out))
	return nil
}

func (p *Process) stop(why error) {
	var e *Error
	if !errors.As(why, &e) {
		why = &Error{Class: ClassOther, Msg: why.Error()}
	}
	p.dead = why
	if p.cmd != nil {
		p.cmd.Process.Kill()
		p.in.Close()
		p.cmd.Wait()
	}
}

// Close ends the helper: it exits when its stdin closes.
func (p *Process) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.dead != nil {
		return nil
	}
	p.in.Close()
	err := p.cmd.Wait()
	p.dead = errors.New("closed")
	return err
}
