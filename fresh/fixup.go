package fresh

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os/exec"
	"sort"
	"strings"

	"mis/ext4"
	"mis/manifest"
)

// copyFlags are the inode flags that are the user's choice (chattr) rather
// than the filesystem's structure: they are copied from the original.
// Structural ones (extents, inline data, htree index, huge file, ...) are
// whatever mke2fs built.
const copyFlags = 0x1 | 0x2 | 0x8 | 0x10 | 0x20 | 0x40 | 0x80 | // secrm unrm sync immutable append nodump noatime
	0x4000 | 0x8000 | 0x10000 | 0x20000 | // journal_data notail dirsync topdir
	0x2000000 | 0x20000000 // dax projinherit

// fixExt reads the new filesystem with our ext4 reader, maps every path of
// the manifest to its new inode and writes, through one debugfs run, what
// mke2fs -d lost or could not know: times to the nanosecond with their
// epoch bits, atime and crtime, inode flags, generation, any mode or
// owner mke2fs got wrong, and the superblock's identity fields.
func (e *exporter) fixExt(pp *partPlan, sb super, size int64, ratio float64) error {
	fsm := pp.fs
	nfs, err := ext4.Open(io.NewSectionReader(e.out, pp.part.Start, size), size)
	if err != nil {
		return fmt.Errorf("reading the new filesystem: %w", err)
	}
	byPath := map[string]*ext4.Inode{}
	err = nfs.Walk(func(path []byte, ino uint32, in *ext4.Inode) error {
		byPath[string(bytes.TrimPrefix(path, []byte("/")))] = in
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading the new filesystem: %w", err)
	}
	var script strings.Builder
	seen := map[string]bool{}
	csum := nfs.Super().HasMetadataCsum()
	keptGen := 0
	for i := range fsm.Files {
		want := &fsm.Files[i]
		first := relPath(want.Paths[0])
		got := byPath[first]
		if got == nil {
			return fmt.Errorf("mke2fs did not create %q (inode %d)", first, want.Ino)
		}
		for _, p := range want.Paths {
			seen[relPath(p)] = true
			if o := byPath[relPath(p)]; o == nil || o.Ino != got.Ino {
				return fmt.Errorf("mke2fs did not link %q to the same inode as %q", relPath(p), first)
			}
		}
		if err := checkInode(nfs, want, got, first); err != nil {
			return err
		}
		fixInode(&script, want, got, csum, &keptGen)
	}
	var extra []string
	for p := range byPath {
		if !seen[p] {
			extra = append(extra, p)
		}
	}
	sort.Strings(extra)
	for _, p := range extra {
		if p != "lost+found" {
			return fmt.Errorf("the new filesystem has %q, which the version does not", p)
		}
		// mke2fs always makes lost+found; the original had none.
		script.WriteString("rmdir /lost+found\n")
	}
	if keptGen > 0 {
		e.warn("partition %d: %d directories or files keep the generation number mke2fs gave them: their block checksums depend on it", pp.part.Index, keptGen)
	}
	fixSuper(&script, sb, super(nfs.Super().Raw[:]), ratio)
	if script.Len() == 0 {
		return nil
	}
	cmd := exec.CommandContext(e.ctx, "debugfs", "-w", "-f", "-", fmt.Sprintf("%s?offset=%d", e.out.Name(), pp.part.Start))
	cmd.Env = e2fsEnv(sb)
	cmd.Stdin = strings.NewReader(script.String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		return toolError("debugfs", err, out)
	}
	// debugfs echoes each command and reports failures without failing.
	if bad := debugfsErrors(out); bad != "" {
		return fmt.Errorf("debugfs: %s", bad)
	}
	return nil
}

func relPath(p []byte) string { return string(bytes.TrimPrefix(p, []byte("/"))) }

// debugfsErrors returns the lines of debugfs output that are not the echo
// of a command or its banner.
func debugfsErrors(out []byte) string {
	var bad []string
	for _, line := range strings.Split(string(out), "\n") {
		if line == "" || strings.HasPrefix(line, "debugfs ") || strings.HasPrefix(line, "debugfs:") {
			continue
		}
		bad = append(bad, line)
		if len(bad) == 10 {
			break
		}
	}
	return strings.Join(bad, "; ")
}

// checkInode refuses a new inode that differs from the original in what
// mke2fs -d is trusted to copy and fixInode does not set.
func checkInode(nfs *ext4.FS, want *manifest.Entry, got *ext4.Inode, path string) error {
	if uint32(got.Mode)&manifest.ModeType != want.Mode&manifest.ModeType {
		return fmt.Errorf("%q: file type %o, the original has %o", path, uint32(got.Mode)&manifest.ModeType, want.Mode&manifest.ModeType)
	}
	if !want.IsDir() && got.Size != want.Size {
		return fmt.Errorf("%q: size %d, the original has %d", path, got.Size, want.Size)
	}
	if uint32(got.Links) != want.Nlink && !want.IsDir() {
		return fmt.Errorf("%q: %d links, the original has %d", path, got.Links, want.Nlink)
	}
	if m := want.Mode & manifest.ModeType; (m == manifest.ModeChar || m == manifest.ModeBlock) && (got.Major != want.RdevMajor || got.Minor != want.RdevMinor) {
		return fmt.Errorf("%q: device %d:%d, the original has %d:%d", path, got.Major, got.Minor, want.RdevMajor, want.RdevMinor)
	}
	xs, err := nfs.Xattrs(got.Ino)
	if err != nil {
		return fmt.Errorf("%q: %w", path, err)
	}
	if len(xs) != len(want.Xattrs) {
		return fmt.Errorf("%q: %d xattrs, the original has %d", path, len(xs), len(want.Xattrs))
	}
	have := map[string][]byte{}
	for _, x := range xs {
		have[x.Name] = x.Value
	}
	for _, x := range want.Xattrs {
		if v, ok := have[x.Name]; !ok || !bytes.Equal(v, x.Value) {
			return fmt.Errorf("%q: xattr %s was not reproduced by mke2fs", path, x.Name)
		}
	}
	return nil
}

// generationInBlocks reports whether, with metadata_csum, checksums in
// blocks outside the inode are seeded with its generation: directory blocks
// and extent tree blocks below the inode. debugfs rewrites only the inode's
// own checksum, so changing the generation there would break those.
func generationInBlocks(in *ext4.Inode, csum bool) bool {
	if !csum || in.HasInlineData() {
		return false
	}
	if in.IsDir() {
		return true
	}
	// An extent header in i_block: magic 0xF30A, depth at byte 6.
	return in.HasExtents() && binary.LittleEndian.Uint16(in.Block[6:]) > 0
}

// splitTime encodes nanoseconds since the epoch as an ext4 inode stores
// them: the low 32 bits of the seconds, and the extra word holding the
// nanoseconds and two more epoch bits (so 1901..2446 round-trip).
func splitTime(ns int64) (lo, extra uint32) {
	sec := ns / 1e9
	nsec := ns % 1e9
	if nsec < 0 {
		sec--
		nsec += 1e9
	}
	lo = uint32(sec)
	epoch := uint32((sec-int64(int32(lo)))>>32) & 3
	return lo, uint32(nsec)<<2 | epoch
}

// fixInode appends the debugfs commands that make inode got carry want's
// times, flags, generation, mode and owner. Only differing fields are set.
func fixInode(w *strings.Builder, want *manifest.Entry, got *ext4.Inode, csum bool, kept *int) {
	le := binary.LittleEndian
	raw := got.Raw
	set := func(field string, cur, val uint32) {
		if cur != val {
			fmt.Fprintf(w, "sif <%d> %s %d\n", got.Ino, field, val)
		}
	}
	if uint32(got.Mode) != want.Mode {
		fmt.Fprintf(w, "sif <%d> mode 0%o\n", got.Ino, want.Mode)
	}
	set("uid", got.UID, want.UID)
	set("gid", got.GID, want.GID)
	if !generationInBlocks(got, csum) {
		set("generation", got.Generation, want.Generation)
	} else if got.Generation != want.Generation {
		*kept++
	}
	set("flags", got.Flags, got.Flags&^copyFlags|want.Flags&copyFlags)
	// has reports whether the inode's extra space reaches byte end.
	has := func(end int) bool { return len(raw) > 128 && int(got.ExtraIsize) >= end-128 }
	times := []struct {
		name         string
		ns           int64
		lo, extraOff int
	}{
		{"atime", want.Atime, 0x08, 0x8C},
		{"ctime", want.Ctime, 0x0C, 0x84},
		{"mtime", want.Mtime, 0x10, 0x88},
		{"crtime", want.Crtime, 0x90, 0x94},
	}
	for _, t := range times {
		lo, extra := splitTime(t.ns)
		if t.lo >= 128 {
			if !has(t.lo + 4) {
				continue
			}
		}
		set(t.name+"_lo", le.Uint32(raw[t.lo:]), lo)
		if has(t.extraOff + 4) {
			set(t.name+"_extra", le.Uint32(raw[t.extraOff:]), extra)
		}
	}
}

// fixSuper sets the superblock fields that are identity or policy but not
// mke2fs options: reserved blocks (scaled when the filesystem grows), error
// behaviour, check intervals, reserved uid/gid, default hash, default and
// extra mount options, flags, creator OS and the checksum seed.
func fixSuper(w *strings.Builder, want, got super, ratio float64) {
	set := func(field string, cur, val uint64) {
		if cur != val {
			fmt.Fprintf(w, "ssv %s %d\n", field, val)
		}
	}
	set("r_blocks_count", got.reservedBlocks(), uint64(float64(want.reservedBlocks())*ratio))
	set("errors", uint64(got.u16(0x3C)), uint64(want.u16(0x3C)))
	if got.u16(0x36) != want.u16(0x36) {
		fmt.Fprintf(w, "ssv max_mnt_count %d\n", int16(want.u16(0x36)))
	}
	set("checkinterval", uint64(got.u32(0x44)), uint64(want.u32(0x44)))
	set("creator_os", uint64(got.u32(0x48)), uint64(want.u32(0x48)))
	set("def_resuid", uint64(got.u16(0x50)), uint64(want.u16(0x50)))
	set("def_resgid", uint64(got.u16(0x52)), uint64(want.u16(0x52)))
	set("def_hash_version", uint64(got.u8(0xFC)), uint64(want.u8(0xFC)))
	set("default_mount_opts", uint64(got.u32(0x100)), uint64(want.u32(0x100)))
	set("flags", uint64(got.u32(0x160)), uint64(want.u32(0x160)))
	if want.features()[1]&0x2000 != 0 {
		set("checksum_seed", uint64(got.u32(0x270)), uint64(want.u32(0x270)))
	}
	if mo := want.mountOpts(); !bytes.Equal(mo, got.mountOpts()) && len(mo) > 0 && !bytes.ContainsAny(mo, " \t\n\"") {
		fmt.Fprintf(w, "ssv mount_opts %s\n", mo)
	}
}
