package image

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/veraticus/egoengine/internal/health/printable"
)

// LinkOptions says where the home and the image's Home Manager files are.
type LinkOptions struct {
	Root      string // filesystem prefix ("/" in a container)
	Home      string // the home to bring in line, as the image sees it
	HomeFiles string // Home Manager's home-files (or a link to it), as the image sees it
	HomePath  string // Home Manager's profile (home-path), linked at ~/.nix-profile; "" to leave that link alone
	StoreDir  string // the Nix store, as the image sees it
}

// DefaultLinkOptions returns the paths the image records.
func DefaultLinkOptions() LinkOptions {
	return LinkOptions{Root: "/", Home: Home, HomeFiles: HomeFilesLink, HomePath: HomePathLink, StoreDir: StoreDir}
}

// Conflict is a place where a link belongs but something of the user's is.
type Conflict struct {
	Path   string // home-relative
	Reason string // what is there
}

// LinkResult says what LinkHome did. Paths are relative to the home.
type LinkResult struct {
	Linked    []string   // links created, or moved to the new image's files
	Unchanged int        // links that already pointed at the new image's files
	Removed   []string   // dangling links into an old Home Manager generation, removed
	Conflicts []Conflict // places left alone because something else is there
	Skipped   []string   // folders that could not be read while looking for stale links
}

// OK says whether the home now matches the image.
func (r LinkResult) OK() bool { return len(r.Conflicts) == 0 }

// Write prints what was done, one line per change, then a summary line.
// Paths come from the home volume, so they are made printable.
func (r LinkResult) Write(w io.Writer) error {
	var b strings.Builder
	for _, p := range r.Linked {
		fmt.Fprintf(&b, "linked    %s\n", printable.Name("~/"+p))
	}
	for _, p := range r.Removed {
		fmt.Fprintf(&b, "removed   %s (dangling link into an old image)\n", printable.Name("~/"+p))
	}
	for _, c := range r.Conflicts {
		fmt.Fprintf(&b, "conflict  %s: %s; move it away and run again to get the image's version\n", printable.Name("~/"+c.Path), printable.Text(c.Reason))
	}
	for _, p := range r.Skipped {
		fmt.Fprintf(&b, "skipped   %s (cannot read it)\n", printable.Name("~/"+p))
	}
	fmt.Fprintf(&b, "image link-home: %d linked, %d unchanged, %d removed, %d conflicts\n",
		len(r.Linked), r.Unchanged, len(r.Removed), len(r.Conflicts))
	_, err := io.WriteString(w, b.String())
	return err
}

// LinkHome links every file of the image's Home Manager home-files into the
// home, as Home Manager's activation would, and removes links in the home
// that point into a Home Manager generation whose store path is gone.
//
// It replaces only symlinks that point into the store. A file, a folder or a
// link elsewhere where a link belongs is reported as a conflict and left as
// it is; nothing that is not a link into the store is ever removed. Running
// it twice changes nothing the second time.
func LinkHome(o LinkOptions) (LinkResult, error) {
	var res LinkResult
	r, err := newRoot(o.Root)
	if err != nil {
		return res, err
	}
	if o.StoreDir == "" {
		o.StoreDir = StoreDir
	}
	l := &linker{r: r, o: o, res: &res}

	home, fi, err := r.stat(o.Home)
	if err != nil {
		return res, fmt.Errorf("home: %w", err)
	}
	if !fi.IsDir() {
		return res, fmt.Errorf("home %s is not a folder", home)
	}
	l.home = home

	files, err := r.resolve(o.HomeFiles)
	if err != nil {
		return res, fmt.Errorf("home files: %w (is this the egoengine image?)", err)
	}
	want, err := l.wanted(files)
	if err != nil {
		return res, err
	}
	if o.HomePath != "" {
		profile, err := r.resolve(o.HomePath)
		if err != nil {
			return res, fmt.Errorf("home profile: %w", err)
		}
		want[ProfileLink] = profile
	}

	rels := make([]string, 0, len(want))
	for rel := range want {
		rels = append(rels, rel)
	}
	sort.Strings(rels)
	for _, rel := range rels {
		if err := l.link(rel, want[rel]); err != nil {
			return res, err
		}
	}
	if err := l.removeStale(); err != nil {
		return res, err
	}
	return res, nil
}

type linker struct {
	r    root
	o    LinkOptions
	home string // resolved, in-image
	res  *LinkResult
}

// wanted lists the entries of the home-files tree: each file or link in it
// (a link to a folder counts as one entry, as in Home Manager) maps its
// home-relative path to the in-image path the home's link must point at.
func (l *linker) wanted(files string) (map[string]string, error) {
	want := map[string]string{}
	base := l.r.host(files)
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(base, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		want[rel] = path.Join(files, rel)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading home files %s: %w", files, err)
	}
	return want, nil
}

// managed says whether a link target is something the image put there: a
// path in the Nix store.
func (l *linker) managed(target string) bool {
	store := path.Clean(l.o.StoreDir) + "/"
	return path.IsAbs(target) && strings.HasPrefix(path.Clean(target)+"/", store) && path.Clean(target)+"/" != store
}

// generation says whether a link target lies in a Home Manager generation
// (its home-files or its profile), which is what stale links point into.
func (l *linker) generation(target string) bool {
	if !l.managed(target) {
		return false
	}
	rest := strings.TrimPrefix(path.Clean(target), path.Clean(l.o.StoreDir)+"/")
	entry, _, _ := strings.Cut(rest, "/")
	return strings.HasSuffix(entry, "-home-manager-files") || strings.HasSuffix(entry, "-home-manager-path")
}

func (l *linker) conflict(rel, format string, args ...any) {
	l.res.Conflicts = append(l.res.Conflicts, Conflict{Path: rel, Reason: fmt.Sprintf(format, args...)})
}

// link makes ~/rel a symlink to target, unless something of the user's is there.
func (l *linker) link(rel, target string) error {
	if !l.parents(rel) {
		return nil
	}
	dest := l.r.host(path.Join(l.home, rel))
	fi, err := os.Lstat(dest)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.Symlink(target, dest); err != nil {
			return fmt.Errorf("linking ~/%s: %w", rel, err)
		}
		l.res.Linked = append(l.res.Linked, rel)
		return nil
	case err != nil:
		return fmt.Errorf("~/%s: %w", rel, err)
	case fi.Mode()&fs.ModeSymlink == 0:
		kind := "a file"
		if fi.IsDir() {
			kind = "a folder"
		}
		l.conflict(rel, "%s of yours is there", kind)
		return nil
	}
	old, err := os.Readlink(dest)
	if err != nil {
		return fmt.Errorf("~/%s: %w", rel, err)
	}
	if old == target {
		l.res.Unchanged++
		return nil
	}
	if !l.managed(old) {
		l.conflict(rel, "a link of yours to %s is there", old)
		return nil
	}
	// Replace in one rename so the file is never missing.
	tmp, err := tempLink(target, dest)
	if err != nil {
		return fmt.Errorf("linking ~/%s: %w", rel, err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("linking ~/%s: %w", rel, err)
	}
	l.res.Linked = append(l.res.Linked, rel)
	return nil
}

// parents makes sure every folder above ~/rel exists. A dangling link into an
// old generation where a folder belongs is replaced by the folder; anything
// else that is not a folder is a conflict. It reports whether rel can be linked.
func (l *linker) parents(rel string) bool {
	dir := path.Dir(rel)
	if dir == "." {
		return true
	}
	cur := l.home
	for _, comp := range strings.Split(dir, "/") {
		cur = path.Join(cur, comp)
		curRel := strings.TrimPrefix(cur, l.home+"/")
		h := l.r.host(cur)
		fi, err := os.Lstat(h)
		if errors.Is(err, fs.ErrNotExist) {
			if err := os.Mkdir(h, 0o755); err != nil {
				l.conflict(rel, "cannot create ~/%s: %v", curRel, unwrapPathError(err))
				return false
			}
			continue
		}
		if err != nil {
			l.conflict(rel, "cannot read ~/%s: %v", curRel, unwrapPathError(err))
			return false
		}
		if fi.IsDir() {
			continue
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if _, dfi, err := l.r.stat(cur); err == nil && dfi.IsDir() {
				continue // a link to a folder: files go inside it, as with mkdir -p
			}
			target, _ := os.Readlink(h)
			if l.generation(target) && !l.r.exists(cur) {
				if err := os.Remove(h); err == nil {
					l.res.Removed = append(l.res.Removed, curRel)
					if err := os.Mkdir(h, 0o755); err == nil {
						continue
					}
				}
			}
		}
		l.conflict(rel, "~/%s is in the way and is not a folder", curRel)
		return false
	}
	return true
}

// removeStale walks the home, without following links, and removes each
// dangling link that points into a Home Manager generation.
func (l *linker) removeStale() error {
	base := l.r.host(l.home)
	return filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(base, p)
		rel = filepath.ToSlash(rel)
		if err != nil {
			if p == base {
				return err
			}
			// An unreadable folder of the user's is theirs: note it, go on.
			l.res.Skipped = append(l.res.Skipped, rel)
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		target, err := os.Readlink(p)
		if err != nil || !l.generation(target) {
			return nil
		}
		if l.r.exists(path.Join(l.home, rel)) {
			return nil
		}
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("removing stale link ~/%s: %w", rel, err)
		}
		l.res.Removed = append(l.res.Removed, rel)
		return nil
	})
}

// tempLink makes a symlink to target beside dest under a name nothing else
// has, so that the rename over dest never clobbers a file of the user's.
func tempLink(target, dest string) (string, error) {
	for i := 0; i < 100; i++ {
		tmp := fmt.Sprintf("%s.egoagent-%d-%d", dest, os.Getpid(), i)
		err := os.Symlink(target, tmp)
		if err == nil {
			return tmp, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", err
		}
	}
	return "", fmt.Errorf("no free temporary name beside %s", dest)
}
