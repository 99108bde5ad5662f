package treeclone

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"mis/chunker"
	"mis/manifest"
	"mis/repo"
)

// CommitStats says what a commit found in the upper and stored.
type CommitStats struct {
	Added    int // paths in the upper that the base did not have
	Replaced int // paths of the base the upper replaced (edited files, copied-up directories)
	Deleted  int // paths of the base gone (whiteouts, opaque directories, replaced subtrees)

	FilesRead int64 // regular files read from the upper and chunked
	BytesRead int64
	// What the commit added to the repository (unchanged content read from
	// the upper dedups against the base's chunks and adds nothing).
	NewChunks, NewBytes, StoredBytes int64

	// NeedsFresh is true when the result is not the base: its residual and
	// layout are the base's, which no longer describe its files, so only a
	// fresh export (`mis export --fresh`) can write it. The result's Exact
	// is false; NeedsFresh is what tells it from a --discard-free import.
	NeedsFresh bool
}

// Commit builds the manifest of the base plus the edits in upperRoot (the
// clone's upper directory, holding one pN directory per edited
// filesystem). Only the upper is read: the base's content is not.
//
// For each filesystem with an upper, every file, directory, symlink,
// device, FIFO and socket in the upper replaces the base's entry at its
// path (all attributes: mode, owner, nanosecond a/m/ctimes, birth time,
// xattrs except overlayfs's own trusted.overlay.*, chattr flags, symlink
// target, device numbers, size, content chunked and stored through w);
// whiteouts delete the path and its subtree; opaque directories drop the
// base's children; hardlinks inside the upper are grouped by upper inode.
// An entry keeps the base's inode number when its path named a base inode
// that is gone entirely (so an edited file keeps its number), others get
// numbers above the base's largest. Changed files have Content but no
// Extents, like detached FAT content; the disk ranges of replaced or
// deleted base files become zero residual runs so the manifest still
// tiles the disk. The result has Exact false (see CommitStats.NeedsFresh).
//
// The clone must be unmounted: Commit takes the clone's lock (when
// upperRoot is a clone's upper) and fails with ErrMounted otherwise.
// Reading an upper under a live overlay could catch a copy-up half done.
// The caller saves the result (layer.Save) with w and commits.
func Commit(ctx context.Context, w *repo.Writer, params chunker.Params, base *manifest.Manifest, upperRoot string) (*manifest.Manifest, CommitStats, error) {
	var st CommitStats
	upperRoot, err := filepath.Abs(upperRoot)
	if err != nil {
		return nil, st, err
	}
	root := filepath.Dir(upperRoot)
	if _, err := os.Stat(filepath.Join(root, "clone.json")); err == nil && filepath.Base(upperRoot) == "upper" {
		d := Dirs{Root: root, Upper: upperRoot, Lock: filepath.Join(root, "lock")}
		unlock, err := lockClone(d, "commit")
		if err != nil {
			return nil, st, err
		}
		defer unlock()
		if err := checkNoMounts(d); err != nil {
			return nil, st, err
		}
	}
	if err := checkUpperParts(upperRoot, base); err != nil {
		return nil, st, err
	}

	out := *base
	out.Filesystems = append([]manifest.Filesystem(nil), base.Filesystems...)
	var freed []manifest.Run
	var pending []pendingFile
	for i := range out.Filesystems {
		f := &out.Filesystems[i]
		dir := filepath.Join(upperRoot, fmt.Sprintf("p%d", f.PartIndex))
		if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
			continue // never mounted or not edited: the base's entries as they are
		}
		if err := ctx.Err(); err != nil {
			return nil, st, err
		}
		res, err := mergeFS(&base.Filesystems[i], dir, &st)
		if err != nil {
			return nil, st, fmt.Errorf("partition %d: %w", f.PartIndex, err)
		}
		f.Files = res.files
		freed = append(freed, res.freed...)
		for _, p := range res.content {
			p.fs = i
			pending = append(pending, p)
		}
		st.NeedsFresh = true
	}
	if !st.NeedsFresh {
		return &out, st, nil
	}
	before := w.Stats()
	if err := storeContent(ctx, w, params, out.Filesystems, pending, &st); err != nil {
		return nil, st, err
	}
	after := w.Stats()
	st.NewChunks = after.NewChunks - before.NewChunks
	st.NewBytes = after.NewBytes - before.NewBytes
	st.StoredBytes = after.StoredBytes - before.StoredBytes

	out.Exact = false
	out.Residual = withZeroRuns(base.Residual, freed)
	if err := out.Validate(); err != nil {
		return nil, st, fmt.Errorf("internal error, committed manifest is inconsistent: %w", err)
	}
	return &out, st, nil
}

// checkUpperParts refuses an upper with a pN the base does not have.
func checkUpperParts(upperRoot string, base *manifest.Manifest) error {
	names, err := os.ReadDir(upperRoot)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, f := range base.Filesystems {
		known[fmt.Sprintf("p%d", f.PartIndex)] = true
	}
	for _, n := range names {
		if !known[n.Name()] {
			return fmt.Errorf("%s: the base has no filesystem %s", filepath.Join(upperRoot, n.Name()), n.Name())
		}
	}
	return nil
}

// pendingFile is an upper regular file whose content Commit stores.
type pendingFile struct {
	fs, entry int
	abs       string
	size      int64
}

type mergeResult struct {
	files   []manifest.Entry
	freed   []manifest.Run // disk ranges of base files no longer in the tree
	content []pendingFile  // entries whose content is still to be stored
}

// mergeFS applies one filesystem's upper to its base entries.
func mergeFS(base *manifest.Filesystem, upperDir string, st *CommitStats) (*mergeResult, error) {
	nodes, err := readUpper(upperDir)
	if err != nil {
		return nil, err
	}
	if len(nodes) == 0 || !nodes[0].isDir() || nodes[0].whiteout {
		return nil, fmt.Errorf("%s is not a directory", upperDir)
	}
	basePath := map[string]int{} // normalised path -> base entry index
	var maxIno uint32
	for i := range base.Files {
		e := &base.Files[i]
		maxIno = max(maxIno, e.Ino)
		for _, p := range e.Paths {
			basePath[normPath(p)] = i
		}
	}

	// What the upper hides of the base: the entry at a path (dropSelf),
	// and everything below a path (dropTree).
	dropSelf := map[string]bool{}
	dropTree := map[string]bool{}
	upperAt := make(map[string]*upperNode, len(nodes))
	for _, n := range nodes {
		upperAt[n.path] = n
		bi, inBase := basePath[n.path]
		dropSelf[n.path] = true
		merged := n.isDir() && !n.whiteout && !n.opaque && inBase && base.Files[bi].IsDir()
		if !merged {
			dropTree[n.path] = true
		}
		switch {
		case n.whiteout:
		case inBase:
			st.Replaced++
		default:
			st.Added++
		}
	}

	res := &mergeResult{}
	freedIno := map[string]int{} // path -> base entry that lost every path
	for i := range base.Files {
		e := base.Files[i]
		var kept [][]byte
		for _, p := range e.Paths {
			np := normPath(p)
			if dropSelf[np] || underDropped(np, dropTree) {
				if n := upperAt[np]; n == nil || n.whiteout {
					st.Deleted++ // not replaced by an upper entry
				}
				continue
			}
			kept = append(kept, p)
		}
		switch {
		case len(kept) == len(e.Paths):
			res.files = append(res.files, e)
		case len(kept) > 0:
			// Some names of a hardlinked inode went: the inode stays.
			e.Nlink -= uint32(len(e.Paths) - len(kept))
			e.Paths = kept
			res.files = append(res.files, e)
		default:
			for _, p := range e.Paths {
				freedIno[normPath(p)] = i
			}
			for _, x := range e.Extents {
				res.freed = append(res.freed, manifest.Run{Off: x.DiskOff, Len: x.Len, Zero: true})
			}
		}
	}

	// Upper inodes, hardlinks grouped by inode number.
	type group struct{ nodes []*upperNode }
	var groups []*group
	byIno := map[uint64]*group{}
	for _, n := range nodes {
		if n.whiteout {
			continue
		}
		if !n.isDir() && n.stx.Nlink > 1 {
			if g := byIno[n.stx.Ino]; g != nil {
				g.nodes = append(g.nodes, n)
				continue
			}
			g := &group{nodes: []*upperNode{n}}
			byIno[n.stx.Ino] = g
			groups = append(groups, g)
			continue
		}
		groups = append(groups, &group{nodes: []*upperNode{n}})
	}
	claimed := map[int]bool{}
	next := uint64(maxIno) + 1
	newDirs := map[string]int{} // path -> index in res.files, for nlink
	for _, g := range groups {
		first := g.nodes[0]
		e := entryFromUpper(first)
		for _, n := range g.nodes {
			e.Paths = append(e.Paths, []byte(n.path))
		}
		e.Nlink = uint32(len(g.nodes))
		reused := false
		for _, n := range g.nodes {
			bi, ok := freedIno[n.path]
			if !ok || claimed[bi] {
				continue
			}
			claimed[bi] = true
			inheritBase(&e, &base.Files[bi])
			reused = true
			break
		}
		if !reused {
			if next > math.MaxUint32 {
				return nil, errors.New("no inode numbers left above the base's largest")
			}
			e.Ino = uint32(next)
			next++
		}
		if e.IsDir() {
			newDirs[first.path] = len(res.files)
		}
		if e.IsRegular() && e.Size > 0 {
			res.content = append(res.content, pendingFile{entry: len(res.files), abs: first.abs, size: int64(e.Size)})
		}
		res.files = append(res.files, e)
	}
	fixDirLinks(res.files, newDirs)
	// Inode order, as import writes it; content indexes follow the sort.
	order := make([]int, len(res.files))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return res.files[order[a]].Ino < res.files[order[b]].Ino })
	where := make([]int, len(order))
	sorted := make([]manifest.Entry, len(order))
	for to, from := range order {
		sorted[to] = res.files[from]
		where[from] = to
	}
	res.files = sorted
	for k := range res.content {
		res.content[k].entry = where[res.content[k].entry]
	}
	return res, nil
}

// normPath gives a manifest path its relative spelling ("" is the root).
func normPath(p []byte) string { return strings.TrimPrefix(string(p), "/") }

func parentPath(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}

// underDropped reports whether a proper ancestor of p hides its subtree.
func underDropped(p string, dropTree map[string]bool) bool {
	for p != "" {
		p = parentPath(p)
		if dropTree[p] {
			return true
		}
	}
	return false
}

func statxNanos(t unix.StatxTimestamp) int64 { return t.Sec*1e9 + int64(t.Nsec) }

// entryFromUpper records an upper inode's attributes (not its content).
func entryFromUpper(n *upperNode) manifest.Entry {
	s := &n.stx
	e := manifest.Entry{
		Mode: uint32(s.Mode), UID: s.Uid, GID: s.Gid, Size: s.Size,
		Atime: statxNanos(s.Atime), Mtime: statxNanos(s.Mtime), Ctime: statxNanos(s.Ctime),
		Flags: n.flags, Symlink: n.symlink, Xattrs: n.xattrs,
	}
	if s.Mask&unix.STATX_BTIME != 0 {
		e.Crtime = statxNanos(s.Btime)
	}
	switch e.Mode & manifest.ModeType {
	case manifest.ModeChar, manifest.ModeBlock:
		e.RdevMajor, e.RdevMinor = s.Rdev_major, s.Rdev_minor
		e.Size = 0
	case manifest.ModeFIFO, manifest.ModeSocket:
		e.Size = 0
	}
	return e
}

// inheritBase gives an upper entry the identity of the base inode its path
// named: inode number, and for the same file type its birth time,
// generation and layout flags. User flags add to the base's: the FUSE lower
// cannot report them, so a copy-up never carries them into the upper.
func inheritBase(e *manifest.Entry, b *manifest.Entry) {
	e.Ino = b.Ino
	if e.Mode&manifest.ModeType != b.Mode&manifest.ModeType {
		return
	}
	e.Crtime = b.Crtime
	e.Generation = b.Generation
	e.Flags |= b.Flags &^ manifest.FlagInlineData // content is chunks now, never inline
}

// fixDirLinks sets the link count of directories taken from the upper
// (overlayfs reports 1 for merged directories): 2 plus one per
// subdirectory, as ext4 counts, capped the ext4 way (dir_nlink) at 1.
func fixDirLinks(files []manifest.Entry, newDirs map[string]int) {
	subdirs := map[string]uint32{}
	for i := range files {
		if !files[i].IsDir() {
			continue
		}
		for _, p := range files[i].Paths {
			if np := normPath(p); np != "" {
				subdirs[parentPath(np)]++
			}
		}
	}
	for p, i := range newDirs {
		n := 2 + subdirs[p]
		if n >= 65000 {
			n = 1
		}
		files[i].Nlink = n
	}
}

// withZeroRuns adds zero runs for the freed ranges to the residual, in disk
// order (non-zero runs keep their relative order: the residual stream is
// laid over them in that order).
func withZeroRuns(residual, freed []manifest.Run) []manifest.Run {
	if len(freed) == 0 {
		return residual
	}
	out := make([]manifest.Run, 0, len(residual)+len(freed))
	out = append(out, residual...)
	out = append(out, freed...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Off < out[j].Off })
	// Merge touching zero runs: freed extents of one file are often adjacent.
	merged := out[:1]
	for _, r := range out[1:] {
		last := &merged[len(merged)-1]
		if r.Zero && last.Zero && last.Off+last.Len == r.Off {
			last.Len += r.Len
			continue
		}
		merged = append(merged, r)
	}
	return merged
}
