package manifest

// The binary manifest (format version 2):
//
//	"MISMANIF" uvarint(version) body
//
// Numbers are (u)varints; signed values that usually sit close to a
// neighbour are written as the difference (inode numbers against the
// previous entry, atime/ctime/crtime against mtime, run and extent offsets
// against the previous end), and each path as the length of the prefix it
// shares with the path written before it plus the rest. Optional entry
// fields are announced by one bit mask. Chunk IDs are raw 32 bytes.

const manifestMagic = "MISMANIF"

// Bits of an entry's optional-field mask.
const (
	hasCrtime = 1 << iota
	hasFlags
	hasGeneration
	hasRdev
	hasSymlink
	hasXattrs
	hasContent
	hasExtents
	hasAll = 1<<iota - 1
)

// Smallest encodings, used to bound counts read from untrusted input.
const (
	minEntryBytes  = 12 // mask, ino, path count, mode, uid, gid, nlink, size, 4 times
	minRefBytes    = 33
	minRunBytes    = 3
	minExtentBytes = 3
	minPartBytes   = 10
	minFSBytes     = 16
)

func (e *encoder) manifest(m *Manifest) {
	e.varint(m.DiskSize)
	e.bool(m.Exact)
	e.layout(&m.Layout)
	e.runs(m.Residual)
	e.refs(m.ResidualData)
	e.uvarint(uint64(len(m.Filesystems)))
	for i := range m.Filesystems {
		fs := &m.Filesystems[i]
		e.fsParams(fs)
		e.entries(fs.Files)
	}
}

func (d *decoder) manifest() *Manifest {
	m := &Manifest{FormatVersion: FormatVersion}
	m.DiskSize = d.varint()
	m.Exact = d.bool()
	m.Layout = d.layout()
	m.Residual = d.runs()
	m.ResidualData = d.refs()
	n := d.count(minFSBytes, "filesystem")
	if n > 0 {
		m.Filesystems = make([]Filesystem, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		fs := &m.Filesystems[i]
		d.fsParams(fs)
		fs.Files = d.entries()
	}
	return m
}

func (e *encoder) layout(l *Layout) {
	e.str(l.Kind)
	e.varint(int64(l.SectorSize))
	e.str(l.DiskGUID)
	e.uvarint(uint64(l.Signature))
	e.uvarint(uint64(len(l.Partitions)))
	for _, p := range l.Partitions {
		e.varint(int64(p.Index))
		e.varint(p.Start)
		e.varint(p.Size)
		e.str(p.Type)
		e.str(p.GUID)
		e.str(p.Name)
		e.uvarint(p.Attributes)
		e.bool(p.Bootable)
		e.bool(p.Logical)
		e.str(p.Filesystem)
	}
	e.bytes(l.Detail)
}

func (d *decoder) layout() Layout {
	var l Layout
	l.Kind = d.str()
	l.SectorSize = d.int("sector size")
	l.DiskGUID = d.str()
	l.Signature = d.u32("MBR signature")
	n := d.count(minPartBytes, "partition")
	if n > 0 {
		l.Partitions = make([]Partition, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		p := &l.Partitions[i]
		p.Index = d.int("partition index")
		p.Start = d.varint()
		p.Size = d.varint()
		p.Type = d.str()
		p.GUID = d.str()
		p.Name = d.str()
		p.Attributes = d.uvarint()
		p.Bootable = d.bool()
		p.Logical = d.bool()
		p.Filesystem = d.str()
	}
	l.Detail = d.bytes()
	return l
}

func (e *encoder) runs(runs []Run) {
	e.uvarint(uint64(len(runs)))
	var end int64
	for _, r := range runs {
		e.varint(r.Off - end)
		e.varint(r.Len)
		e.bool(r.Zero)
		end = r.Off + r.Len
	}
}

func (d *decoder) runs() []Run {
	n := d.count(minRunBytes, "residual run")
	if n == 0 {
		return nil
	}
	runs := make([]Run, n)
	var end int64
	for i := range runs {
		r := &runs[i]
		r.Off = end + d.varint()
		r.Len = d.varint()
		r.Zero = d.bool()
		end = r.Off + r.Len
	}
	return runs
}

func (e *encoder) refs(refs []Ref) {
	e.uvarint(uint64(len(refs)))
	for _, r := range refs {
		e.b = append(e.b, r.ID[:]...)
		e.uvarint(uint64(r.Size))
	}
}

func (d *decoder) refs() []Ref {
	n := d.count(minRefBytes, "chunk ref")
	refs := d.refSlab.take(n)
	for i := range refs {
		refs[i].ID = d.id()
		refs[i].Size = d.u32("chunk size")
	}
	return refs
}

func (e *encoder) fsParams(fs *Filesystem) {
	e.varint(int64(fs.PartIndex))
	e.str(fs.Type)
	e.varint(fs.Offset)
	e.varint(fs.Size)
	e.str(fs.UUID)
	e.bytes(fs.Label)
	e.uvarint(uint64(fs.BlockSize))
	e.uvarint(uint64(fs.InodeSize))
	for _, f := range fs.Features {
		e.uvarint(uint64(f))
	}
	e.bytes(fs.Super)
}

func (d *decoder) fsParams(fs *Filesystem) {
	fs.PartIndex = d.int("partition index")
	fs.Type = d.str()
	fs.Offset = d.varint()
	fs.Size = d.varint()
	fs.UUID = d.str()
	fs.Label = d.bytes()
	fs.BlockSize = d.u32("block size")
	inodeSize := d.u32("inode size")
	if inodeSize > 1<<16-1 {
		d.fail("inode size %d does not fit 16 bits", inodeSize)
	}
	fs.InodeSize = uint16(inodeSize)
	for i := range fs.Features {
		fs.Features[i] = d.u32("feature word")
	}
	fs.Super = d.bytes()
}

// entries writes a list of entries; inode numbers and paths are written
// against the previous entry, so the list must be read back whole.
func (e *encoder) entries(files []Entry) {
	e.uvarint(uint64(len(files)))
	var prevIno uint32
	var prevPath []byte
	for i := range files {
		f := &files[i]
		var mask uint64
		if f.Crtime != 0 {
			mask |= hasCrtime
		}
		if f.Flags != 0 {
			mask |= hasFlags
		}
		if f.Generation != 0 {
			mask |= hasGeneration
		}
		if f.RdevMajor != 0 || f.RdevMinor != 0 {
			mask |= hasRdev
		}
		if len(f.Symlink) > 0 {
			mask |= hasSymlink
		}
		if len(f.Xattrs) > 0 {
			mask |= hasXattrs
		}
		if len(f.Content) > 0 {
			mask |= hasContent
		}
		if len(f.Extents) > 0 {
			mask |= hasExtents
		}
		e.uvarint(mask)
		e.varint(int64(f.Ino) - int64(prevIno))
		prevIno = f.Ino
		e.uvarint(uint64(len(f.Paths)))
		for _, p := range f.Paths {
			shared := commonPrefix(prevPath, p)
			e.uvarint(uint64(shared))
			e.bytes(p[shared:])
			prevPath = p
		}
		e.uvarint(uint64(f.Mode))
		e.uvarint(uint64(f.UID))
		e.uvarint(uint64(f.GID))
		e.uvarint(uint64(f.Nlink))
		e.uvarint(f.Size)
		e.varint(f.Mtime)
		e.varint(f.Atime - f.Mtime)
		e.varint(f.Ctime - f.Mtime)
		if mask&hasCrtime != 0 {
			e.varint(f.Crtime - f.Mtime)
		}
		if mask&hasFlags != 0 {
			e.uvarint(uint64(f.Flags))
		}
		if mask&hasGeneration != 0 {
			e.uvarint(uint64(f.Generation))
		}
		if mask&hasRdev != 0 {
			e.uvarint(uint64(f.RdevMajor))
			e.uvarint(uint64(f.RdevMinor))
		}
		if mask&hasSymlink != 0 {
			e.bytes(f.Symlink)
		}
		if mask&hasXattrs != 0 {
			e.uvarint(uint64(len(f.Xattrs)))
			for _, x := range f.Xattrs {
				e.str(x.Name)
				e.bytes(x.Value)
			}
		}
		if mask&hasContent != 0 {
			e.refs(f.Content)
		}
		if mask&hasExtents != 0 {
			e.uvarint(uint64(len(f.Extents)))
			var fileEnd, diskEnd int64
			for _, x := range f.Extents {
				e.varint(x.FileOff - fileEnd)
				e.varint(x.DiskOff - diskEnd)
				e.varint(x.Len)
				fileEnd, diskEnd = x.FileOff+x.Len, x.DiskOff+x.Len
			}
		}
	}
}

func (d *decoder) entries() []Entry {
	n := d.count(minEntryBytes, "entry")
	if n == 0 {
		return nil
	}
	files := make([]Entry, n)
	var prevIno uint32
	var prevPath []byte
	for i := 0; i < n && d.err == nil; i++ {
		f := &files[i]
		mask := d.uvarint()
		if mask&^hasAll != 0 {
			d.fail("entry %d: unknown field bits %#x", i, mask&^hasAll)
			break
		}
		ino := int64(prevIno) + d.varint()
		if ino < 0 || ino > 1<<32-1 {
			d.fail("entry %d: inode number %d out of range", i, ino)
			break
		}
		f.Ino = uint32(ino)
		prevIno = f.Ino
		f.Paths = d.pathSlab.take(d.count(2, "path"))
		for j := range f.Paths {
			shared := d.uvarint()
			if shared > uint64(len(prevPath)) {
				d.fail("inode %d: path shares %d bytes with a previous path of %d", f.Ino, shared, len(prevPath))
				break
			}
			rest := d.bytes()
			if d.pathBudget -= int64(shared) + int64(len(rest)); d.pathBudget < 0 {
				d.fail("paths expand to more than %d bytes from %d bytes of input (corrupt or crafted prefix sharing)", pathBudget(len(d.b)), len(d.b))
				break
			}
			p := d.nameSlab.take(int(shared) + len(rest))
			copy(p, prevPath[:shared])
			copy(p[shared:], rest)
			f.Paths[j] = p
			prevPath = p
		}
		f.Mode = d.u32("mode")
		f.UID = d.u32("uid")
		f.GID = d.u32("gid")
		f.Nlink = d.u32("nlink")
		f.Size = d.uvarint()
		f.Mtime = d.varint()
		f.Atime = f.Mtime + d.varint()
		f.Ctime = f.Mtime + d.varint()
		if mask&hasCrtime != 0 {
			f.Crtime = f.Mtime + d.varint()
		}
		if mask&hasFlags != 0 {
			f.Flags = d.u32("flags")
		}
		if mask&hasGeneration != 0 {
			f.Generation = d.u32("generation")
		}
		if mask&hasRdev != 0 {
			f.RdevMajor = d.u32("rdev major")
			f.RdevMinor = d.u32("rdev minor")
		}
		if mask&hasSymlink != 0 {
			f.Symlink = d.bytes()
		}
		if mask&hasXattrs != 0 {
			f.Xattrs = d.xattrSlab.take(d.count(2, "xattr"))
			for j := range f.Xattrs {
				f.Xattrs[j].Name = d.str()
				f.Xattrs[j].Value = d.bytes()
			}
		}
		if mask&hasContent != 0 {
			f.Content = d.refs()
		}
		if mask&hasExtents != 0 {
			f.Extents = d.extentSlab.take(d.count(minExtentBytes, "extent"))
			var fileEnd, diskEnd int64
			for j := range f.Extents {
				x := &f.Extents[j]
				x.FileOff = fileEnd + d.varint()
				x.DiskOff = diskEnd + d.varint()
				x.Len = d.varint()
				fileEnd, diskEnd = x.FileOff+x.Len, x.DiskOff+x.Len
			}
		}
	}
	return files
}

func commonPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}
