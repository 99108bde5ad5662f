// Package manifesttest makes realistic synthetic manifests for tests and
// benchmarks of the manifest encoding and of layers: a Debian-like tree
// (deep shared directory prefixes, mostly small regular files with one or
// two extents, some symlinks and directories, a few xattrs) laid out on a
// disk that the residual runs and file extents tile exactly, so the result
// passes manifest.Validate.
package manifesttest

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"mis/chunker"
	"mis/manifest"
)

const block = 4096

// Realistic returns a valid manifest of one ext4 filesystem with n inodes.
func Realistic(rng *rand.Rand, n int) *manifest.Manifest {
	m := &manifest.Manifest{FormatVersion: manifest.FormatVersion, Exact: true,
		Layout: manifest.Layout{Kind: "gpt", SectorSize: 512, DiskGUID: "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0",
			Partitions: []manifest.Partition{{Index: 1, Start: 1 << 20, Size: 1 << 40, Type: "linux", GUID: "11111111-2222-3333-4444-555555555555", Filesystem: "ext4"}},
			Detail:     []byte(`{"kind":"gpt"}`)}}
	fs := manifest.Filesystem{PartIndex: 1, Type: "ext4", Offset: 1 << 20, UUID: "6a1b-uuid", BlockSize: block, InodeSize: 256,
		Features: [3]uint32{0x3c, 0x2c2, 0x46b}, Super: make([]byte, 1024)}
	for i := range 64 {
		fs.Super[i] = byte(rng.Uint32())
	}
	pos := int64(0)
	var residualBytes int64
	gap := func() {
		// Metadata between files: mostly a few data blocks, sometimes zeros.
		l := int64(1+rng.IntN(3)) * block
		zero := rng.IntN(4) == 0
		m.Residual = append(m.Residual, manifest.Run{Off: pos, Len: l, Zero: zero})
		if !zero {
			residualBytes += l
		}
		pos += l
	}
	gap()
	base := int64(1_700_000_000) * 1e9
	dirs := []string{""}
	for i := 0; i < n; i++ {
		ino := uint32(2 + i)
		if i > 0 {
			ino = uint32(11 + i)
		}
		e := manifest.Entry{Ino: ino, UID: 0, GID: 0, Nlink: 1, Generation: rng.Uint32(),
			Mtime: base + rng.Int64N(1e17), Flags: 0x80000}
		e.Atime, e.Ctime, e.Crtime = e.Mtime+rng.Int64N(1e9), e.Mtime+rng.Int64N(1e12), e.Mtime-rng.Int64N(1e12)
		dir := dirs[rng.IntN(len(dirs))]
		switch k := rng.IntN(100); {
		case i == 0:
			e.Mode, e.Paths, e.Size, e.Nlink = manifest.ModeDir|0o755, [][]byte{nil}, block, 20
		case k < 12:
			name := join(dir, fmt.Sprintf("pkg-%d", i))
			dirs = append(dirs, name)
			e.Mode, e.Paths, e.Size, e.Nlink = manifest.ModeDir|0o755, [][]byte{[]byte(name)}, block, 2
		case k < 20:
			target := fmt.Sprintf("../lib/x86_64-linux-gnu/libfoo.so.%d", i)
			e.Mode, e.Paths, e.Symlink, e.Size = manifest.ModeSymlink|0o777, [][]byte{[]byte(join(dir, fmt.Sprintf("link%d", i)))}, []byte(target), uint64(len(target))
		default:
			e.Mode = manifest.ModeRegular | 0o644
			e.Paths = [][]byte{[]byte(join(dir, fmt.Sprintf("file-%d.gz", i)))}
			if rng.IntN(50) == 0 {
				e.Paths = append(e.Paths, []byte(join(dirs[rng.IntN(len(dirs))], fmt.Sprintf("hardlink-%d", i))))
				e.Nlink = 2
			}
			if rng.IntN(40) == 0 {
				e.Xattrs = []manifest.Xattr{{Name: "security.capability", Value: []byte{1, 0, 0, 2, 0x20, 0, 0, 0}}}
			}
			size := int64(1 + rng.ExpFloat64()*20000)
			e.Size = uint64(size)
			e.Content = chunks(rng, size)
			// One extent, or two split at a block boundary with metadata between.
			if size > 2*block && rng.IntN(5) == 0 {
				first := int64(1+rng.IntN(int(size/block)-1)) * block
				e.Extents = []manifest.Extent{{FileOff: 0, DiskOff: pos, Len: first}}
				pos += first
				gap()
				e.Extents = append(e.Extents, manifest.Extent{FileOff: first, DiskOff: pos, Len: size - first})
				pos += size - first
			} else {
				e.Extents = []manifest.Extent{{FileOff: 0, DiskOff: pos, Len: size}}
				pos += size
			}
			if tail := (block - pos%block) % block; tail > 0 {
				m.Residual = append(m.Residual, manifest.Run{Off: pos, Len: tail})
				residualBytes += tail
				pos += tail
			}
			if rng.IntN(3) == 0 {
				gap()
			}
		}
		fs.Files = append(fs.Files, e)
	}
	gap()
	m.DiskSize = pos
	fs.Size = pos
	m.ResidualData = chunks(rng, residualBytes)
	m.Filesystems = []manifest.Filesystem{fs}
	return m
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// chunks makes a random chunk list of total raw size n (about 64 KiB per
// chunk, like small files and the residual stream).
func chunks(rng *rand.Rand, n int64) []manifest.Ref {
	var refs []manifest.Ref
	for n > 0 {
		s := min(n, 16<<10+rng.Int64N(96<<10))
		var id chunker.ID
		for i := range id {
			id[i] = byte(rng.Uint32())
		}
		refs = append(refs, manifest.Ref{ID: id, Size: uint32(s)})
		n -= s
	}
	return refs
}

// Clone deep-copies the parts of m that Edit changes in place.
func Clone(m *manifest.Manifest) *manifest.Manifest {
	c := *m
	c.Residual = slices.Clone(m.Residual)
	c.ResidualData = slices.Clone(m.ResidualData)
	c.Filesystems = slices.Clone(m.Filesystems)
	for i := range c.Filesystems {
		c.Filesystems[i].Files = slices.Clone(m.Filesystems[i].Files)
	}
	return &c
}

// Edit returns a copy of m with about fraction of its entries changed the
// way a package upgrade changes a system, keeping the manifest valid:
// files removed (their disk bytes become zero runs), added (inline
// content, new inode numbers), rewritten (new chunks of the same sizes),
// touched (times only), re-xattr'd, re-owned, hardlinked and renamed; and
// a few residual chunks replaced.
func Edit(rng *rand.Rand, m *manifest.Manifest, fraction float64) *manifest.Manifest {
	c := Clone(m)
	fs := &c.Filesystems[0]
	k := max(1, int(float64(len(fs.Files))*fraction))
	maxIno := fs.Files[len(fs.Files)-1].Ino
	var added []manifest.Entry
	removed := map[int]bool{}
	for range k {
		i := 1 + rng.IntN(len(fs.Files)-1)
		if removed[i] {
			continue
		}
		e := &fs.Files[i]
		switch rng.IntN(8) {
		case 0:
			removed[i] = true
			for _, x := range e.Extents {
				c.Residual = append(c.Residual, manifest.Run{Off: x.DiskOff, Len: x.Len, Zero: true})
			}
		case 1:
			maxIno++
			size := int64(1 + rng.IntN(60))
			added = append(added, manifest.Entry{Ino: maxIno, Mode: manifest.ModeRegular | 0o600, Nlink: 1,
				Paths: [][]byte{[]byte(fmt.Sprintf("%s.new%d", e.Paths[0], maxIno))}, Size: uint64(size),
				Mtime: e.Mtime + 1, Ctime: e.Ctime + 1, Flags: manifest.FlagInlineData, Content: chunks(rng, size)})
		case 2:
			if e.IsRegular() {
				fresh := chunks(rng, 1)
				e.Content = slices.Clone(e.Content)
				for j := range e.Content {
					e.Content[j].ID = fresh[0].ID
					e.Content[j].ID[0] = byte(j)
				}
			}
			e.Mtime += 1e9
			e.Ctime += 1e9
		case 3:
			e.Mtime, e.Atime = e.Mtime+7, e.Atime+9
		case 4:
			e.Xattrs = []manifest.Xattr{{Name: "user.edit", Value: []byte(fmt.Sprint(rng.Int()))}}
		case 5:
			e.UID, e.GID = 1000, 1000
		case 6:
			e.Paths = append(slices.Clone(e.Paths), []byte(fmt.Sprintf("extra-link-%d", i)))
			e.Nlink++
		case 7:
			e.Paths = slices.Clone(e.Paths)
			e.Paths[0] = append([]byte("renamed/"), e.Paths[0]...)
		}
	}
	var files []manifest.Entry
	for i := range fs.Files {
		if !removed[i] {
			files = append(files, fs.Files[i])
		}
	}
	fs.Files = append(files, added...)
	slices.SortFunc(c.Residual, func(a, b manifest.Run) int { return int(a.Off - b.Off) })
	for range max(1, len(c.ResidualData)/200) {
		j := rng.IntN(len(c.ResidualData))
		c.ResidualData[j].ID = chunks(rng, 1)[0].ID
	}
	return c
}
