package manifest

import (
	"fmt"
	"slices"
)

// A Layer is what a manifest changes against a base manifest: Apply(base)
// gives the manifest back. Entries are keyed by inode number within a
// filesystem: a layer carries every added or changed entry whole and the
// inode numbers of removed ones (whiteouts). The residual run list and its
// data refs are edit scripts against the base's lists (copy a stretch of
// the base, or insert new items), because a big image has thousands of
// runs and refs and a new version changes few of them. The layout and each
// filesystem's parameters are stored whole when they changed.
type Layer struct {
	DiskSize int64
	Exact    bool
	Layout   *Layout // nil: the base's layout

	Residual     ListDelta[Run]
	ResidualData ListDelta[Ref]

	// Filesystems are the new manifest's filesystems, in its order.
	Filesystems []FSLayer
}

// FSLayer is one filesystem of the new manifest.
type FSLayer struct {
	// Base is the index of the base filesystem this one changes, or -1:
	// the filesystem is new (or cannot be keyed by inode) and Changed
	// holds all its entries in order.
	Base int
	// Params are the filesystem's fields other than Files, when they
	// changed or Base is -1; nil: the base filesystem's.
	Params *Filesystem
	// Changed are the added and changed entries, by ascending inode.
	Changed []Entry
	// Removed are the inode numbers of the base's entries that are gone,
	// ascending.
	Removed []uint32
}

// ListDelta rebuilds a list from a base list: each op either copies N
// items of the base from From, or (Copy false) takes the next N of Items.
type ListDelta[T comparable] struct {
	Ops   []ListOp
	Items []T
}

// ListOp is one step of a ListDelta.
type ListOp struct {
	Copy    bool
	From, N int
}

// Diff returns the layer that turns base into m. Neither is modified; the
// layer shares m's memory.
func Diff(base, m *Manifest) *Layer {
	l := &Layer{DiskSize: m.DiskSize, Exact: m.Exact}
	if !layoutEqual(&base.Layout, &m.Layout) {
		lay := m.Layout
		l.Layout = &lay
	}
	l.Residual = diffList(base.Residual, m.Residual)
	l.ResidualData = diffList(base.ResidualData, m.ResidualData)
	used := make([]bool, len(base.Filesystems))
	for i := range m.Filesystems {
		fs := &m.Filesystems[i]
		bi := -1
		for j := range base.Filesystems {
			if !used[j] && base.Filesystems[j].PartIndex == fs.PartIndex {
				bi = j
				break
			}
		}
		if bi >= 0 && (!ascendingInodes(base.Filesystems[bi].Files) || !ascendingInodes(fs.Files)) {
			bi = -1 // cannot key by inode: store it whole
		}
		if bi < 0 {
			params := paramsOf(fs)
			l.Filesystems = append(l.Filesystems, FSLayer{Base: -1, Params: &params, Changed: fs.Files})
			continue
		}
		used[bi] = true
		bfs := &base.Filesystems[bi]
		fl := FSLayer{Base: bi}
		if !paramsEqual(bfs, fs) {
			params := paramsOf(fs)
			fl.Params = &params
		}
		fl.Changed, fl.Removed = diffEntries(bfs.Files, fs.Files)
		l.Filesystems = append(l.Filesystems, fl)
	}
	return l
}

// diffEntries merges two inode-ascending lists.
func diffEntries(a, b []Entry) (changed []Entry, removed []uint32) {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i].Ino < b[j].Ino):
			removed = append(removed, a[i].Ino)
			i++
		case i == len(a) || b[j].Ino < a[i].Ino:
			changed = append(changed, b[j])
			j++
		default:
			if !EntriesEqual(&a[i], &b[j]) {
				changed = append(changed, b[j])
			}
			i++
			j++
		}
	}
	return changed, removed
}

// Apply returns the manifest the layer makes of base, refusing a layer
// that does not fit it (whiteouts or copies of what base lacks). base is
// not modified; the result shares memory with base and l.
func (l *Layer) Apply(base *Manifest) (*Manifest, error) {
	return ApplyLayers(base, []*Layer{l})
}

// ascendingInodes reports whether files are strictly ascending by inode, the
// order that lets a layer key them by inode.
func ascendingInodes(files []Entry) bool {
	for i := 1; i < len(files); i++ {
		if files[i-1].Ino >= files[i].Ino {
			return false
		}
	}
	return true
}

// diffList writes m as copies of stretches of base where it can: a greedy
// match, extending the current copy while items agree and otherwise
// jumping to the first place in base that holds the next item.
func diffList[T comparable](base, m []T) ListDelta[T] {
	var d ListDelta[T]
	if slices.Equal(base, m) {
		if len(m) > 0 {
			d.Ops = []ListOp{{Copy: true, From: 0, N: len(m)}}
		}
		return d
	}
	first := make(map[T]int, len(base))
	for i := len(base) - 1; i >= 0; i-- {
		first[base[i]] = i
	}
	next := -1 // base position that would extend the last copy
	for _, item := range m {
		if next >= 0 && next < len(base) && base[next] == item {
			d.Ops[len(d.Ops)-1].N++
			next++
			continue
		}
		if p, ok := first[item]; ok {
			d.Ops = append(d.Ops, ListOp{Copy: true, From: p, N: 1})
			next = p + 1
			continue
		}
		if n := len(d.Ops); n > 0 && !d.Ops[n-1].Copy {
			d.Ops[n-1].N++
		} else {
			d.Ops = append(d.Ops, ListOp{N: 1})
		}
		d.Items = append(d.Items, item)
		next = -1
	}
	return d
}

// maxListItems bounds what an edit script may build: far beyond any real
// disk's runs or refs, and it keeps a corrupt script from allocating
// without end.
const maxListItems = 1 << 24

// Apply rebuilds the list from base.
func (d *ListDelta[T]) Apply(base []T) ([]T, error) {
	total, inserted := 0, 0
	for _, op := range d.Ops {
		if op.N <= 0 {
			return nil, fmt.Errorf("edit of %d items", op.N)
		}
		if op.Copy {
			if op.From < 0 || op.From > len(base) || op.N > len(base)-op.From {
				return nil, fmt.Errorf("copy of items [%d,+%d) from a base of %d", op.From, op.N, len(base))
			}
		} else {
			if op.N > len(d.Items)-inserted {
				return nil, fmt.Errorf("insert of %d items, %d left", op.N, len(d.Items)-inserted)
			}
			inserted += op.N
		}
		if total += op.N; total > maxListItems {
			return nil, fmt.Errorf("edit script makes more than %d items", maxListItems)
		}
	}
	if inserted != len(d.Items) {
		return nil, fmt.Errorf("%d inserted items unused", len(d.Items)-inserted)
	}
	if total == 0 {
		return nil, nil
	}
	out := make([]T, 0, total)
	items := d.Items
	for _, op := range d.Ops {
		if op.Copy {
			out = append(out, base[op.From:op.From+op.N]...)
		} else {
			out = append(out, items[:op.N]...)
			items = items[op.N:]
		}
	}
	return out, nil
}

// paramsOf copies a filesystem's fields other than Files.
func paramsOf(fs *Filesystem) Filesystem {
	p := *fs
	p.Files = nil
	return p
}

func paramsEqual(a, b *Filesystem) bool {
	return a.PartIndex == b.PartIndex && a.Type == b.Type && a.Offset == b.Offset && a.Size == b.Size &&
		a.UUID == b.UUID && string(a.Label) == string(b.Label) && a.BlockSize == b.BlockSize &&
		a.InodeSize == b.InodeSize && a.Features == b.Features && string(a.Super) == string(b.Super)
}

func layoutEqual(a, b *Layout) bool {
	return a.Kind == b.Kind && a.SectorSize == b.SectorSize && a.DiskGUID == b.DiskGUID &&
		a.Signature == b.Signature && slices.Equal(a.Partitions, b.Partitions) && string(a.Detail) == string(b.Detail)
}

// EntriesEqual reports whether two entries record the same inode alike in
// every field (a nil and an empty byte string are equal).
func EntriesEqual(a, b *Entry) bool {
	if a.Ino != b.Ino || a.Mode != b.Mode || a.UID != b.UID || a.GID != b.GID || a.Nlink != b.Nlink ||
		a.Size != b.Size || a.Atime != b.Atime || a.Mtime != b.Mtime || a.Ctime != b.Ctime ||
		a.Crtime != b.Crtime || a.Flags != b.Flags || a.Generation != b.Generation ||
		a.RdevMajor != b.RdevMajor || a.RdevMinor != b.RdevMinor || string(a.Symlink) != string(b.Symlink) ||
		len(a.Paths) != len(b.Paths) || len(a.Xattrs) != len(b.Xattrs) ||
		!slices.Equal(a.Content, b.Content) || !slices.Equal(a.Extents, b.Extents) {
		return false
	}
	for i := range a.Paths {
		if string(a.Paths[i]) != string(b.Paths[i]) {
			return false
		}
	}
	for i := range a.Xattrs {
		if a.Xattrs[i].Name != b.Xattrs[i].Name || string(a.Xattrs[i].Value) != string(b.Xattrs[i].Value) {
			return false
		}
	}
	return true
}

// ForEachRef calls fn for every chunk ref the layer carries itself: new
// residual data refs and the content of added and changed entries. Refs
// it copies from the base are the base's to name.
func (l *Layer) ForEachRef(fn func(Ref) error) error {
	for _, r := range l.ResidualData.Items {
		if err := fn(r); err != nil {
			return err
		}
	}
	for i := range l.Filesystems {
		for j := range l.Filesystems[i].Changed {
			for _, r := range l.Filesystems[i].Changed[j].Content {
				if err := fn(r); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
