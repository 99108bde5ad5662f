// Package image turns raw disk images into manifests plus chunks (import)
// and back (export). It is the only package that knows both the on-disk
// layout of disks and filesystems (through packages disk and ext4) and the
// repository; the manifest it produces is plain data.
//
// Import splits the disk into two kinds of bytes:
//   - file content: for every regular file of every ext2/3/4 filesystem, the
//     initialised bytes of its extents up to its size, chunked per file so
//     the same file dedups across images and versions whatever its place;
//   - residual: every other byte (partition tables, boot code, superblocks,
//     inode tables, directories, journal, slack after EOF, free space,
//     partitions mis does not read), as runs: zero runs cost nothing, the
//     other runs are one chunked stream.
//
// Together the two tile the disk, so export writes every byte back.
package image

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"

	"mis/chunker"
	"mis/disk"
	"mis/ext4"
	"mis/internal/ingest"
	"mis/manifest"
	"mis/repo"
)

// zeroBlock is the granularity at which residual zero runs are found.
const zeroBlock = 4096

// ImportOptions tunes an import.
type ImportOptions struct {
	// DiscardFree drops the content of blocks that a filesystem marks free:
	// they export as zeros. The result is no longer an exact copy.
	DiscardFree bool
	// Progress, if set, is called with bytes processed and the total.
	Progress func(done, total int64)
	// Warn receives messages about partitions stored whole, etc.
	Warn func(msg string)
	// Parent is the manifest of the version this image is a newer copy
	// of. A regular file whose inode is unchanged against it (same inode
	// number, generation, size, mtime and ctime to the nanosecond, same
	// extents) is still read and hashed: reproducible image builds and raw
	// block writes change bytes under an unchanged inode. Its chunks are
	// then found in the repository, so they cost no compression or
	// storage. The parent's chunks must be in the repository this import
	// writes to.
	Parent *manifest.Manifest
	// TrustMetadata takes the parent's chunk list for a file whose inode is
	// unchanged without reading it: faster, and blind to bytes changed
	// under the inode. A version made so must not be called exact.
	TrustMetadata bool
	// Rehash reads and hashes every file (and all residual data) even when
	// Parent or Unchanged say unchanged.
	Rehash bool
	// Unchanged, if set, reports whether the disk bytes [off, off+n) are
	// identical to those of the image Parent was imported from. The
	// importer then takes residual data (and file content) in such ranges
	// from Parent without reading it. It must never say true wrongly.
	Unchanged func(off, n int64) bool
}

// ImportStats says how much of an import was recognised without reading.
type ImportStats struct {
	ReusedFiles, ReusedBytes int64 // unchanged files taken from the parent unread
	ReadFiles, ReadBytes     int64 // files read and chunked
	// VerifiedFiles and VerifiedBytes are the read files whose inode was
	// unchanged and whose bytes matched the parent's; ChangedUnderInode
	// counts those whose bytes differed although their inode did not.
	VerifiedFiles, VerifiedBytes int64
	ChangedUnderInode            int64
	// ResidualReusedBytes is residual data taken from the parent's chunks
	// unread (only with Unchanged); ResidualReadBytes is residual read from
	// the image (zeros included, holes of a sparse source not).
	ResidualReusedBytes, ResidualReadBytes int64
	// ReusedFilesystems counts filesystems whose partition was unchanged
	// as a whole (only with Unchanged): the parent's record, not walked.
	ReusedFilesystems int64
}

// Importer reads one image into a manifest, storing chunks through w.
type importer struct {
	ctx       context.Context
	w         *repo.Writer
	params    chunker.Params
	name      string      // for error messages
	r         io.ReaderAt // the disk
	holes     holeFinder  // nil when the source cannot tell
	holeCache holeCache
	size      int64
	opt       ImportOptions
	done      int64
	total     int64

	stats ImportStats
	spans []segment // disk ranges holding file content
	free  []freeMap // per filesystem: blocks marked free (DiscardFree only)
}

type freeMap struct {
	off       int64 // partition offset on the disk
	blockSize int64
	used      *ext4.Bitmap
	blocks    uint64
}

// Import reads the raw disk image at path and returns its manifest. Chunks
// are written through w; the caller commits them with the version record.
func Import(ctx context.Context, w *repo.Writer, params chunker.Params, path string, opt ImportOptions) (*manifest.Manifest, error) {
	m, _, err := ImportWithStats(ctx, w, params, path, opt)
	return m, err
}

// ImportWithStats is Import that also reports what was reused from the
// parent. Holes of a sparse image file are found with SEEK_DATA/SEEK_HOLE
// and not read.
func ImportWithStats(ctx context.Context, w *repo.Writer, params chunker.Params, path string, opt ImportOptions) (*manifest.Manifest, ImportStats, error) {
	f, size, err := OpenSource(path)
	if err != nil {
		return nil, ImportStats{}, err
	}
	defer f.Close()
	return importFrom(ctx, w, params, f, &fileHoles{f: f, size: size}, size, path, opt)
}

// ImportReader imports the disk image read through r, size bytes long. name
// is used in error messages (a path, or "clone web1"). If r also has
// NextData(off) (int64, bool) and NextHole(off) int64 (as mountfs.View
// does), the zeros it reports are not read; an *os.File is asked with
// SEEK_DATA/SEEK_HOLE.
func ImportReader(ctx context.Context, w *repo.Writer, params chunker.Params, r io.ReaderAt, size int64, name string, opt ImportOptions) (*manifest.Manifest, ImportStats, error) {
	var holes holeFinder
	switch r := r.(type) {
	case holeFinder:
		holes = r
	case *os.File:
		holes = &fileHoles{f: r, size: size}
	}
	return importFrom(ctx, w, params, r, holes, size, name, opt)
}

func importFrom(ctx context.Context, w *repo.Writer, params chunker.Params, r io.ReaderAt, holes holeFinder, size int64, name string, opt ImportOptions) (*manifest.Manifest, ImportStats, error) {
	if size <= 0 {
		return nil, ImportStats{}, fmt.Errorf("%s: image is empty", name)
	}
	im := &importer{ctx: ctx, w: w, params: params, name: name, r: r, holes: holes, size: size, opt: opt, total: size}
	m, err := im.run()
	if err != nil {
		return nil, ImportStats{}, fmt.Errorf("%s: %w", name, err)
	}
	return m, im.stats, nil
}

func (im *importer) warn(format string, args ...any) {
	if im.opt.Warn != nil {
		im.opt.Warn(fmt.Sprintf(format, args...))
	}
}

func (im *importer) progress(n int64) {
	im.done += n
	if im.opt.Progress != nil {
		im.opt.Progress(im.done, im.total)
	}
}

func (im *importer) run() (*manifest.Manifest, error) {
	layout, err := disk.Read(im.r, im.size)
	if err != nil {
		return nil, err
	}
	m := &manifest.Manifest{FormatVersion: manifest.FormatVersion, DiskSize: im.size, Exact: !im.opt.DiscardFree}
	m.Layout = LayoutFromDisk(layout)
	for _, w := range layout.Warnings {
		im.warn("partition table: %s", w)
	}

	var walked []disk.Partition
	for _, p := range layout.Partitions {
		if err := im.ctx.Err(); err != nil {
			return nil, err
		}
		walkable := p.Filesystem == "ext4" || p.Filesystem == "vfat" || p.Filesystem == "iso9660" || p.Filesystem == "squashfs"
		if q := overlapping(p, walked); q != nil && walkable {
			// Two walks of the same bytes would claim the same blocks as
			// two files' content; the bytes stay exact as residual data.
			im.warn("partition %d overlaps partition %d: its %s is not walked, its bytes are stored as residual data", p.Index, q.Index, p.Filesystem)
			continue
		}
		if walkable {
			walked = append(walked, p)
		}
		if fsm := im.unchangedFilesystem(p); fsm != nil {
			m.Filesystems = append(m.Filesystems, *fsm)
			continue
		}
		switch p.Filesystem {
		case "ext4":
			fsm, err := im.importExt(p)
			if err != nil {
				return nil, fmt.Errorf("partition %d: %w", p.Index, err)
			}
			m.Filesystems = append(m.Filesystems, *fsm)
		case "vfat", "iso9660", "squashfs":
			fsm, err := im.importOther(p)
			if err != nil && im.ctx.Err() != nil {
				return nil, im.ctx.Err()
			}
			if err != nil {
				// Their bytes are residual either way: only the file
				// listing is lost, never exactness.
				im.warn("partition %d: cannot walk %s (%v); stored whole as residual data without a file listing", p.Index, p.Filesystem, err)
				continue
			}
			m.Filesystems = append(m.Filesystems, *fsm)
		case "":
			im.warn("partition %d: no filesystem recognised; stored whole as residual data", p.Index)
		default:
			im.warn("partition %d: %s is not walked yet; stored whole as residual data", p.Index, p.Filesystem)
		}
	}
	if err := im.importResidual(m); err != nil {
		return nil, fmt.Errorf("residual data: %w", err)
	}
	if err := m.Validate(); err != nil {
		// A bug, not bad input: refuse rather than store something that
		// would not export back.
		return nil, fmt.Errorf("internal error, manifest does not tile the disk: %w", err)
	}
	return m, nil
}

// overlapping returns a partition of ps that shares bytes with p, or nil.
func overlapping(p disk.Partition, ps []disk.Partition) *disk.Partition {
	for i := range ps {
		if p.Start < ps[i].End() && ps[i].Start < p.End() {
			return &ps[i]
		}
	}
	return nil
}

// LayoutWarnings are the partition table's problems found at import
// (kept in the layout's detail record), for info to show.
func LayoutWarnings(m *manifest.Manifest) []string {
	var d struct{ Warnings []string }
	json.Unmarshal(m.Layout.Detail, &d) // an old or empty record has none
	return d.Warnings
}

// LayoutFromDisk is the manifest's record of a partition table as import
// makes it (fresh export's tests build layouts the same way).
func LayoutFromDisk(l *disk.Layout) manifest.Layout {
	out := manifest.Layout{Kind: l.Kind, SectorSize: l.SectorSize}
	if l.GPT != nil {
		out.DiskGUID = l.GPT.DiskGUID
	}
	if l.MBR != nil {
		out.Signature = l.MBR.DiskSignature
	}
	// The reader's full record (every field, raw entries, EBRs) goes along
	// verbatim; JSON of plain structs cannot fail.
	out.Detail, _ = json.Marshal(l)
	for i := range l.Partitions {
		p := &l.Partitions[i]
		mp := manifest.Partition{Index: p.Index, Start: p.Start, Size: p.Size, Bootable: p.Bootable(),
			Logical: p.Logical, Filesystem: p.Filesystem}
		switch {
		case p.GPT != nil:
			mp.Type, mp.GUID, mp.Name, mp.Attributes = p.GPT.TypeGUID, p.GPT.PartGUID, p.GPT.Name, p.GPT.Attributes
		case p.MBR != nil:
			mp.Type = fmt.Sprintf("0x%02x", p.MBR.Type)
		}
		if p.Extended {
			mp.Filesystem = "extended"
		}
		out.Partitions = append(out.Partitions, mp)
	}
	return out
}

// importExt walks one ext2/3/4 filesystem.
func (im *importer) importExt(p disk.Partition) (*manifest.Filesystem, error) {
	section := io.NewSectionReader(im.r, p.Start, p.Size)
	fs, err := ext4.Open(section, p.Size)
	if err != nil {
		return nil, err
	}
	// Entries the walk renames (names no path can hold) are reported.
	fs.Warn = func(msg string) { im.warn("partition %d: %s", p.Index, msg) }
	sb := fs.Super()
	out := &manifest.Filesystem{
		PartIndex: p.Index, Type: extTypeName(sb), Offset: p.Start, Size: p.Size,
		UUID: formatUUID(sb.UUID), Label: bytes.Clone(sb.VolumeName),
		BlockSize: sb.BlockSize, InodeSize: sb.InodeSize,
		Features: [3]uint32{sb.FeatureCompat, sb.FeatureIncompat, sb.FeatureRoCompat},
		Super:    append([]byte(nil), sb.Raw[:]...),
	}
	if im.opt.DiscardFree {
		used, err := fs.UsedBlocks()
		if err != nil {
			return nil, err
		}
		im.free = append(im.free, freeMap{off: p.Start, blockSize: int64(sb.BlockSize), used: used, blocks: sb.BlocksCount})
	}

	byIno := map[uint32]int{}
	err = fs.Walk(func(path []byte, ino uint32, in *ext4.Inode) error {
		// The manifest keeps paths relative to the filesystem root ("" is
		// the root itself), the form a tree joins onto any mount point.
		path = bytes.TrimPrefix(path, []byte("/"))
		if i, ok := byIno[ino]; ok {
			out.Files[i].Paths = append(out.Files[i].Paths, append([]byte(nil), path...))
			return nil
		}
		e, err := im.entry(fs, p, path, in)
		if err != nil {
			return fmt.Errorf("inode %d (%q): %w", ino, path, err)
		}
		byIno[ino] = len(out.Files)
		out.Files = append(out.Files, *e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Content is read in inode order, which follows the disk closely for
	// filesystems written by mke2fs and the kernel alike.
	sort.Slice(out.Files, func(i, j int) bool { return out.Files[i].Ino < out.Files[j].Ino })
	inline := map[int][]byte{}
	for i := range out.Files {
		data, err := im.place(fs, p, &out.Files[i])
		if err != nil {
			return nil, fmt.Errorf("inode %d (%q): %w", out.Files[i].Ino, out.Files[i].Paths[0], err)
		}
		if data != nil {
			inline[i] = data
		}
	}
	reused, candidates := im.reuseFromParent(p.Index, out.Files)
	if err := im.storeFiles(out.Files, inline, reused); err != nil {
		return nil, err
	}
	im.checkCandidates(p.Index, out.Files, candidates)
	return out, nil
}

// unchangedFilesystem returns the parent's record of the filesystem in
// partition p when Unchanged vouches for every byte of the partition: a
// walk of the same bytes would give the same record, so it is taken
// without one (and its files' content without reading).
func (im *importer) unchangedFilesystem(p disk.Partition) *manifest.Filesystem {
	if im.opt.Unchanged == nil || im.opt.Parent == nil || im.opt.Rehash || im.opt.DiscardFree {
		return nil
	}
	var old *manifest.Filesystem
	for i := range im.opt.Parent.Filesystems {
		fs := &im.opt.Parent.Filesystems[i]
		if fs.PartIndex == p.Index && fs.Offset == p.Start && fs.Size == p.Size {
			old = fs
		}
	}
	if old == nil || !im.opt.Unchanged(p.Start, p.Size) {
		return nil
	}
	for i := range old.Files {
		for _, x := range old.Files[i].Extents {
			if x.DiskOff < p.Start || x.DiskOff+x.Len > p.Start+p.Size {
				return nil // not a record this partition could have
			}
		}
	}
	fsm := *old
	fsm.Files = append([]manifest.Entry(nil), old.Files...)
	for i := range fsm.Files {
		e := &fsm.Files[i]
		for _, x := range e.Extents {
			im.spans = append(im.spans, segment{x.DiskOff, x.Len})
		}
		if len(e.Extents) > 0 {
			n := manifest.StreamSize(e.Content)
			im.stats.ReusedFiles++
			im.stats.ReusedBytes += n
			im.progress(n)
		}
	}
	im.stats.ReusedFilesystems++
	return &fsm
}

// reuseFromParent gives the parent's chunk list to every file that is
// known unchanged without reading it: the Unchanged hint vouches for its
// blocks, or, with TrustMetadata, its inode is unchanged. It returns which
// files it did, and the files whose inode is unchanged but which must be
// read (by index, with the parent's entry) so the caller can tell how many
// matched.
func (im *importer) reuseFromParent(part int, files []manifest.Entry) (reused []bool, candidates map[int]*manifest.Entry) {
	reused = make([]bool, len(files))
	candidates = map[int]*manifest.Entry{}
	if im.opt.Parent == nil || im.opt.Rehash {
		return reused, candidates
	}
	var parent *manifest.Filesystem
	for i := range im.opt.Parent.Filesystems {
		if im.opt.Parent.Filesystems[i].PartIndex == part {
			parent = &im.opt.Parent.Filesystems[i]
		}
	}
	if parent == nil {
		return reused, candidates
	}
	byIno := make(map[uint32]*manifest.Entry, len(parent.Files))
	for i := range parent.Files {
		byIno[parent.Files[i].Ino] = &parent.Files[i]
	}
	for i := range files {
		e := &files[i]
		old := byIno[e.Ino]
		if old == nil {
			continue
		}
		if im.opt.Unchanged != nil {
			// The disk says so directly: same blocks, same bytes. This
			// also sees raw writes that leave the inode alone. (A file
			// without extents has nothing to read either way.)
			if len(e.Extents) == 0 || !sameExtents(old, e) || !im.extentsUnchanged(e) {
				continue
			}
		} else if !unchangedContent(old, e) {
			continue
		} else if !im.opt.TrustMetadata {
			// Metadata proves nothing about the bytes: read them (an
			// empty file has none).
			if len(e.Extents) > 0 {
				candidates[i] = old
			}
			continue
		}
		e.Content = old.Content
		reused[i] = true
		n := manifest.StreamSize(old.Content)
		im.stats.ReusedFiles++
		im.stats.ReusedBytes += n
		im.progress(n)
	}
	return reused, candidates
}

// checkCandidates counts the files read although their inode was
// unchanged: those whose chunks matched the parent's, and those whose
// bytes changed under the inode, which the import names in a warning.
func (im *importer) checkCandidates(part int, files []manifest.Entry, candidates map[int]*manifest.Entry) {
	var changed []string
	for i, old := range candidates {
		e := &files[i]
		if slices.Equal(e.Content, old.Content) {
			im.stats.VerifiedFiles++
			im.stats.VerifiedBytes += manifest.StreamSize(e.Content)
			continue
		}
		im.stats.ChangedUnderInode++
		changed = append(changed, entryName(e))
	}
	if len(changed) == 0 {
		return
	}
	sort.Strings(changed)
	n, more := len(changed), ""
	if n > 5 {
		more = fmt.Sprintf(" and %d more", len(changed)-5)
		changed = changed[:5]
	}
	im.warn("partition %d: %d file(s) have new bytes under an unchanged inode (same size, times and blocks as in the parent): %s%s; stored as changed", part, n, strings.Join(changed, ", "), more)
}

// entryName is a file's first path, for messages.
func entryName(e *manifest.Entry) string {
	if len(e.Paths) == 0 {
		return fmt.Sprintf("inode %d", e.Ino)
	}
	return strconv.Quote(string(e.Paths[0]))
}

// unchangedContent is the inode test for "this file's data was not
// rewritten": any write changes ctime (and mtime), a reused inode number gets
// a new generation, and the data must still lie in the same blocks.
func unchangedContent(old, cur *manifest.Entry) bool {
	if !cur.IsRegular() || !old.IsRegular() || cur.HasInlineData() || old.HasInlineData() {
		return false
	}
	if old.Size != cur.Size || old.Mtime != cur.Mtime || old.Ctime != cur.Ctime || old.Generation != cur.Generation {
		return false
	}
	return sameExtents(old, cur)
}

// sameExtents reports whether a regular file's content lies in the same
// disk ranges as in the parent, whose chunk list covers exactly those.
func sameExtents(old, cur *manifest.Entry) bool {
	if !cur.IsRegular() || !old.IsRegular() || cur.HasInlineData() || old.HasInlineData() {
		return false
	}
	if len(old.Extents) != len(cur.Extents) {
		return false
	}
	for i := range old.Extents {
		if old.Extents[i] != cur.Extents[i] {
			return false
		}
	}
	return manifest.StreamSize(old.Content) == int64(cur.Size)-holes(cur)
}

// extentsUnchanged asks opt.Unchanged about every extent of a file.
func (im *importer) extentsUnchanged(e *manifest.Entry) bool {
	for _, x := range e.Extents {
		if !im.opt.Unchanged(x.DiskOff, x.Len) {
			return false
		}
	}
	return true
}

// holes is the number of bytes of a file not covered by its extents.
func holes(e *manifest.Entry) int64 {
	return int64(e.Size) - extentBytes(e)
}

// extTypeName names the filesystem the way mkfs -t would: ext4 once any
// ext4-only feature is on, ext3 for a journal, else ext2.
func extTypeName(sb *ext4.Superblock) string {
	const ext4Incompat = ext4.IncompatExtents | ext4.Incompat64Bit | ext4.IncompatFlexBG | ext4.IncompatInlineData
	switch {
	case sb.FeatureIncompat&ext4Incompat != 0 || sb.HasHugeFile() || sb.HasMetadataCsum():
		return "ext4"
	case sb.HasJournal():
		return "ext3"
	}
	return "ext2"
}

func formatUUID(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

func nanos(t ext4.Timestamp) int64 { return t.Sec*1e9 + int64(t.Nsec) }

// entry records an inode's metadata (not its content).
func (im *importer) entry(fs *ext4.FS, p disk.Partition, path []byte, in *ext4.Inode) (*manifest.Entry, error) {
	e := &manifest.Entry{
		Ino: in.Ino, Paths: [][]byte{append([]byte(nil), path...)},
		Mode: uint32(in.Mode), UID: in.UID, GID: in.GID, Nlink: uint32(in.Links), Size: in.Size,
		Atime: nanos(in.Atime), Mtime: nanos(in.Mtime), Ctime: nanos(in.Ctime), Crtime: nanos(in.Crtime),
		Flags: in.Flags, Generation: in.Generation,
	}
	switch e.Mode & manifest.ModeType {
	case manifest.ModeSymlink:
		target, err := fs.Readlink(in.Ino)
		if err != nil {
			return nil, err
		}
		e.Symlink = target
	case manifest.ModeChar, manifest.ModeBlock:
		e.RdevMajor, e.RdevMinor = in.Major, in.Minor
	}
	xs, err := fs.Xattrs(in.Ino)
	if err != nil {
		return nil, err
	}
	for _, x := range xs {
		e.Xattrs = append(e.Xattrs, manifest.Xattr{Name: x.Name, Value: x.Value})
	}
	return e, nil
}

// place records where a regular file's content lies on the disk (its
// Extents) without reading it; for an inline-data file it returns the
// content instead.
func (im *importer) place(fs *ext4.FS, p disk.Partition, e *manifest.Entry) (inline []byte, err error) {
	if !e.IsRegular() || e.Size == 0 {
		return nil, nil
	}
	if e.HasInlineData() {
		return fs.InlineData(e.Ino)
	}
	exts, err := fs.Extents(e.Ino)
	if err != nil {
		return nil, err
	}
	bs := int64(fs.Super().BlockSize)
	for _, x := range exts {
		if x.Uninit {
			continue // reads as zeros; its stale blocks stay residual
		}
		fileOff := int64(x.Logical) * bs
		if uint64(fileOff) >= e.Size {
			continue // preallocated past EOF: not content
		}
		n := min(int64(x.Len)*bs, int64(e.Size)-fileOff)
		diskOff := p.Start + int64(x.Physical)*bs
		if diskOff+n > p.Start+p.Size {
			return nil, fmt.Errorf("extent at block %d runs past the end of the partition", x.Physical)
		}
		if k := len(e.Extents) - 1; k >= 0 && e.Extents[k].FileOff+e.Extents[k].Len == fileOff && e.Extents[k].DiskOff+e.Extents[k].Len == diskOff {
			e.Extents[k].Len += n
			continue
		}
		e.Extents = append(e.Extents, manifest.Extent{FileOff: fileOff, DiskOff: diskOff, Len: n})
	}
	for _, x := range e.Extents {
		im.spans = append(im.spans, segment{x.DiskOff, x.Len})
	}
	return nil, nil
}

// storeFiles stores the content of every file not reused, in order,
// through one ingest pipeline: each file is cut on its own (so a file
// dedups wherever it lies), while hashing and compression of all files'
// chunks run on parallel workers and reading overlaps them. Inline data is
// not counted as progress: its bytes are in the residual inode table.
func (im *importer) storeFiles(files []manifest.Entry, inline map[int][]byte, reused []bool) error {
	seq := func(yield func(ingest.File) bool) {
		for i := range files {
			e := &files[i]
			if reused[i] {
				continue
			}
			f := ingest.File{
				Done: func(refs []manifest.Ref) { e.Content = refs },
				Name: func() string { return fmt.Sprintf("inode %d (%q)", e.Ino, e.Paths[0]) },
			}
			if data, ok := inline[i]; ok {
				f.Size, f.Quiet = int64(len(data)), true
				f.Open = func() (io.Reader, error) { return bytes.NewReader(data), nil }
			} else if len(e.Extents) > 0 {
				f.Size = extentBytes(e)
				f.Open = func() (io.Reader, error) { return im.extentReader(e), nil }
			} else {
				continue
			}
			if !yield(f) {
				return
			}
		}
	}
	st, err := ingest.Store(im.ctx, im.w, im.params, seq, ingest.Options{Progress: im.progress})
	im.stats.ReadFiles += st.Files
	im.stats.ReadBytes += st.Bytes
	return err
}

// extentBytes is the number of content bytes a file's extents hold.
func extentBytes(e *manifest.Entry) int64 {
	var n int64
	for _, x := range e.Extents {
		n += x.Len
	}
	return n
}

// extentReader reads a file's content from its extents on the disk.
func (im *importer) extentReader(e *manifest.Entry) io.Reader {
	if len(e.Extents) == 1 {
		return io.NewSectionReader(im.r, e.Extents[0].DiskOff, e.Extents[0].Len)
	}
	readers := make([]io.Reader, len(e.Extents))
	for i, x := range e.Extents {
		readers[i] = io.NewSectionReader(im.r, x.DiskOff, x.Len)
	}
	return io.MultiReader(readers...)
}
