package manifest

import (
	"fmt"
	"slices"
	"sort"
)

// ApplyLayers applies layers to base in order, like calling Apply on each
// result in turn, but it merges each filesystem's entries once at the end:
// a layer costs what it changes, not the size of the manifest, so reading
// a version deep in a chain stays close to reading its whole manifest.
// base is not modified; the result shares memory with base and the layers.
func ApplyLayers(base *Manifest, layers []*Layer) (*Manifest, error) {
	m := &Manifest{FormatVersion: FormatVersion, DiskSize: base.DiskSize, Exact: base.Exact, Layout: base.Layout,
		Residual: base.Residual, ResidualData: base.ResidualData}
	fss := make([]*pendingFS, len(base.Filesystems))
	for i := range base.Filesystems {
		fss[i] = &pendingFS{params: paramsOf(&base.Filesystems[i]), files: base.Filesystems[i].Files}
	}
	for n, l := range layers {
		m.DiskSize, m.Exact = l.DiskSize, l.Exact
		if l.Layout != nil {
			m.Layout = *l.Layout
		}
		var err error
		if m.Residual, err = l.Residual.Apply(m.Residual); err != nil {
			return nil, fmt.Errorf("layer %d: residual runs: %w", n, err)
		}
		if m.ResidualData, err = l.ResidualData.Apply(m.ResidualData); err != nil {
			return nil, fmt.Errorf("layer %d: residual data: %w", n, err)
		}
		next := make([]*pendingFS, len(l.Filesystems))
		for i := range l.Filesystems {
			fl := &l.Filesystems[i]
			if fl.Base < 0 {
				if fl.Params == nil {
					return nil, fmt.Errorf("layer %d: new filesystem %d has no parameters", n, i)
				}
				next[i] = &pendingFS{params: paramsOf(fl.Params), files: fl.Changed}
				continue
			}
			if fl.Base >= len(fss) || fss[fl.Base] == nil {
				return nil, fmt.Errorf("layer %d: filesystem %d changes base filesystem %d, which does not exist or is taken", n, i, fl.Base)
			}
			p := fss[fl.Base]
			fss[fl.Base] = nil
			if fl.Params != nil {
				p.params = paramsOf(fl.Params)
			}
			if err := p.change(fl.Changed, fl.Removed); err != nil {
				return nil, fmt.Errorf("layer %d: filesystem %d (partition %d): %w", n, i, p.params.PartIndex, err)
			}
			next[i] = p
		}
		fss = next
	}
	if len(fss) > 0 {
		m.Filesystems = make([]Filesystem, len(fss))
	}
	for i, p := range fss {
		m.Filesystems[i] = p.params
		m.Filesystems[i].Files = p.merge()
	}
	return m, nil
}

// pendingFS is a filesystem being resolved: a list of entries and the
// changes layers made to it so far, by inode (nil: removed).
type pendingFS struct {
	params  Filesystem
	files   []Entry
	checked bool // files are known to ascend by inode
	overlay map[uint32]*Entry
}

func (p *pendingFS) has(ino uint32) bool {
	if e, ok := p.overlay[ino]; ok {
		return e != nil
	}
	i := sort.Search(len(p.files), func(i int) bool { return p.files[i].Ino >= ino })
	return i < len(p.files) && p.files[i].Ino == ino
}

// change records one layer's changes, refusing what Apply refuses.
func (p *pendingFS) change(changed []Entry, removed []uint32) error {
	if !p.checked {
		if !ascendingInodes(p.files) {
			return fmt.Errorf("base entries are not in ascending inode order")
		}
		p.checked = true
	}
	if !ascendingInodes(changed) {
		return fmt.Errorf("changed entries are not in ascending inode order")
	}
	for i := 1; i < len(removed); i++ {
		if removed[i-1] >= removed[i] {
			return fmt.Errorf("whiteouts are not in ascending inode order")
		}
	}
	if p.overlay == nil && len(changed)+len(removed) > 0 {
		p.overlay = make(map[uint32]*Entry, len(changed)+len(removed))
	}
	c := 0
	for _, ino := range removed {
		for c < len(changed) && changed[c].Ino < ino {
			c++
		}
		if c < len(changed) && changed[c].Ino == ino {
			return fmt.Errorf("inode %d is both removed and changed", ino)
		}
		if !p.has(ino) {
			return fmt.Errorf("whiteout of inode %d, which the base does not have", ino)
		}
		p.overlay[ino] = nil
	}
	for i := range changed {
		p.overlay[changed[i].Ino] = &changed[i]
	}
	return nil
}

// merge returns the entries with every change applied, ascending by inode.
func (p *pendingFS) merge() []Entry {
	if len(p.overlay) == 0 {
		if len(p.files) == 0 {
			return nil
		}
		return slices.Clone(p.files)
	}
	inos := make([]uint32, 0, len(p.overlay))
	for ino := range p.overlay {
		inos = append(inos, ino)
	}
	slices.Sort(inos)
	out := make([]Entry, 0, len(p.files)+len(inos))
	k := 0
	for i := range p.files {
		ino := p.files[i].Ino
		for k < len(inos) && inos[k] < ino {
			if e := p.overlay[inos[k]]; e != nil {
				out = append(out, *e)
			}
			k++
		}
		if k < len(inos) && inos[k] == ino {
			if e := p.overlay[ino]; e != nil {
				out = append(out, *e)
			}
			k++
			continue
		}
		out = append(out, p.files[i])
	}
	for ; k < len(inos); k++ {
		if e := p.overlay[inos[k]]; e != nil {
			out = append(out, *e)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
