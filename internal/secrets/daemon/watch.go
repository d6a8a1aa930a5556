package daemon

import (
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"

	"github.com/veraticus/egoengine/internal/health/status"
	"github.com/veraticus/egoengine/internal/secrets/engine"
	"github.com/veraticus/egoengine/internal/secrets/secretfile"
)

// learnFiles keeps the files to watch from a pass's report: configured
// secrets are known from the config, mirrored Documents only from passes.
// A pass over everything replaces what is known (the engine forgets
// Documents gone from their vault); a narrower one adds to it. A secret the
// pass did not reach (stopped) keeps its file; a refused one has none.
func (s *server) learnFiles(opts engine.Options, rep *engine.Report) {
	if len(opts.Names) == 0 && len(opts.Exclude) == 0 {
		known := map[string]string{}
		for _, o := range rep.Outcomes {
			if p := s.files[o.Name]; p != "" {
				known[o.Name] = p
			}
		}
		s.files = known
	}
	for _, o := range rep.Outcomes {
		switch {
		case o.State == status.Refused:
			delete(s.files, o.Name)
		case o.Path != "":
			s.files[o.Name] = o.Path
		}
	}
}

// rewatch watches the config file's folder and every secret file's folder.
// Folders are watched rather than files because editors and egoagent
// itself replace files by rename, which ends a watch on the old file.
func (s *server) rewatch() {
	want := map[string]bool{filepath.Dir(s.cur.Path): true}
	for _, sec := range s.cur.Config.Secrets {
		want[filepath.Dir(sec.Path)] = true
	}
	for _, p := range s.files {
		want[filepath.Dir(p)] = true
	}
	have := map[string]bool{}
	for _, p := range s.watcher.WatchList() {
		have[p] = true
		if !want[p] {
			s.watcher.Remove(p)
		}
	}
	for p := range want {
		if !have[p] {
			// A folder that does not exist yet is added after the pass that creates it.
			s.watcher.Add(p)
		}
	}
}

func (s *server) fileEvent(ev fsnotify.Event) {
	if ev.Name == s.cur.Path || (ev.Name == s.ConfigPath) {
		s.reloadAt = time.Now().Add(200 * time.Millisecond)
		return
	}
	if ev.Has(fsnotify.Chmod) && !ev.Has(fsnotify.Write) {
		return
	}
	name := s.secretAt(ev.Name)
	if name == "" || strings.Contains(filepath.Base(ev.Name), ".egoagent-tmp-") {
		return
	}
	// Judged later, not now: the event may be egoagent's own write, whose
	// fingerprint the state has only once the pass that wrote it is over.
	s.dirty[name] = time.Now().Add(watchDebounce)
}

// judge turns file events into watch passes once no pass is running and
// the files have had a moment to settle: only a file that is no longer
// what egoagent last wrote (deleted, replaced, rewritten by its consumer)
// gets a pass and counts against the watch limits. egoagent's own writes
// never do.
func (s *server) judge(now time.Time) {
	if s.running != nil {
		return
	}
	var ready []string
	for name, at := range s.dirty {
		if !at.After(now) {
			ready = append(ready, name)
			delete(s.dirty, name)
		}
	}
	if len(ready) == 0 {
		return // the common case: no state file to read
	}
	for _, name := range s.changedByOthers(ready) {
		if due := s.plan.Touch(name, now); due.Sub(now) > watchMinGap {
			s.Log.Warn("file keeps changing; its next pass waits", zap.String("secret", name), zap.Time("at", due))
		}
	}
}

// nextJudge is when judge has something to do, or zero.
func (s *server) nextJudge() time.Time {
	var next time.Time
	if s.running != nil {
		return next
	}
	for _, at := range s.dirty {
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return next
}

// secretAt returns the name of the secret written to path, if any.
func (s *server) secretAt(path string) string {
	for _, sec := range s.cur.Config.Secrets {
		if sec.Path == path {
			return sec.Name
		}
	}
	for name, p := range s.files {
		if p == path {
			return name
		}
	}
	return ""
}

// changedByOthers keeps the names whose file no longer is what egoagent
// last wrote (changed, deleted, replaced). What egoagent wrote is the
// fingerprint in the state file, which only passes write.
func (s *server) changedByOthers(names []string) []string {
	st, err := status.Load(s.StateDir)
	if err != nil {
		return names
	}
	var out []string
	for _, n := range names {
		sec := st.Find(n)
		if sec == nil {
			out = append(out, n)
			continue
		}
		data, exists, err := secretfile.Read(sec.Path)
		if err != nil || !exists || s.fp.Sum(data) != sec.Written {
			out = append(out, n)
		}
	}
	return out
}
