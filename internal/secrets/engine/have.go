package engine

import (
	"fmt"
	"slices"

	"github.com/veraticus/egoengine/internal/health/statedir"
	"github.com/veraticus/egoengine/internal/health/status"
	"github.com/veraticus/egoengine/internal/secrets/secretfile"
	"github.com/veraticus/egoengine/internal/secrets/source"
)

// installed is what the home already holds of the source's items: for each
// reference whose file is still exactly the copy egoagent installed, the
// version of the item that copy came from, and its content. A Versioned
// source need not send such a value again while the item stays at that
// version (a file or Document costs 1Password two requests), and the pass
// goes on with the content it already has.
type installed struct {
	known   source.Known
	content map[string][]byte
}

// have finds what the home holds, from the state: a secret whose recorded
// version and fingerprint (status.Secret.Version, Written) still describe
// its file. force, a file changed or missing since, or a state from an
// egoagent that kept no versions leave a reference out, so its value is
// sent again. A source that keeps no versions is sent nothing, and no file
// is read for it; nor for a secret the pass leaves out (opts.Names,
// opts.Exclude).
func (e *Engine) have(st *status.State, fp *statedir.Fingerprinter, opts Options) *installed {
	h := &installed{known: source.Known{}, content: map[string][]byte{}}
	if _, versioned := e.Source.(source.Versioned); opts.Force || !versioned {
		return h
	}
	for _, sec := range st.Secrets {
		if sec.Version == "" || sec.Written == "" || sec.Path == "" || !wanted(opts.Names, sec.Name) || slices.Contains(opts.Exclude, sec.Name) {
			continue
		}
		b, exists, err := secretfile.Read(sec.Path)
		if err != nil || !exists || fp.Sum(b) != sec.Written {
			continue
		}
		h.known[sec.Ref], h.content[sec.Ref] = sec.Version, b
	}
	return h
}

// value is what a target gets from a source's answer: the value sent, or
// for one the source left Unchanged, the installed copy it matches.
func (h *installed) value(ref source.Ref, v []byte, version string, unchanged bool, err error) ([]byte, string, error) {
	if err != nil || !unchanged {
		return v, version, err
	}
	b, ok := h.content[ref.String()]
	if !ok || h.known[ref.String()] != version {
		return nil, "", &source.Error{Class: source.ClassOther, Ref: ref.String(),
			Msg: fmt.Sprintf("the source left the value out as unchanged at %s, which egoagent did not say it had; run egoagent refresh --force, and report it", version)}
	}
	return b, version, nil
}
