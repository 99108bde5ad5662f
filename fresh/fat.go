package fresh

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// fatBoot is the geometry of a FAT boot sector that mkfs.vfat can repeat.
type fatBoot struct {
	bytesPerSector, sectorsPerCluster, reserved, fats, rootEntries int
	media, heads, sectorsPerTrack                                  int
	hidden, totalSectors, volumeID                                 uint32
	label                                                          string
	bits                                                           int // 12, 16 or 32
}

// parseFATBoot reads the boot sector fields mkfs.vfat takes as options.
func parseFATBoot(b []byte) (*fatBoot, error) {
	le := binary.LittleEndian
	if len(b) < 512 || b[510] != 0x55 || b[511] != 0xAA {
		return nil, fmt.Errorf("FAT boot sector has no 55 AA signature")
	}
	f := &fatBoot{
		bytesPerSector: int(le.Uint16(b[0x0B:])), sectorsPerCluster: int(b[0x0D]), reserved: int(le.Uint16(b[0x0E:])),
		fats: int(b[0x10]), rootEntries: int(le.Uint16(b[0x11:])), media: int(b[0x15]),
		sectorsPerTrack: int(le.Uint16(b[0x18:])), heads: int(le.Uint16(b[0x1A:])), hidden: le.Uint32(b[0x1C:]),
	}
	if f.bytesPerSector < 512 || f.bytesPerSector&(f.bytesPerSector-1) != 0 || f.sectorsPerCluster == 0 || f.fats == 0 {
		return nil, fmt.Errorf("FAT boot sector geometry is invalid (%d bytes/sector, %d sectors/cluster, %d FATs)", f.bytesPerSector, f.sectorsPerCluster, f.fats)
	}
	f.totalSectors = uint32(le.Uint16(b[0x13:]))
	if f.totalSectors == 0 {
		f.totalSectors = le.Uint32(b[0x20:])
	}
	fatSize := uint32(le.Uint16(b[0x16:]))
	labelOff := 0x2B
	f.volumeID = le.Uint32(b[0x27:])
	if fatSize == 0 {
		fatSize = le.Uint32(b[0x24:])
		labelOff = 0x47
		f.volumeID = le.Uint32(b[0x43:])
	}
	rootSectors := uint32((f.rootEntries*32 + f.bytesPerSector - 1) / f.bytesPerSector)
	meta := uint32(f.reserved) + uint32(f.fats)*fatSize + rootSectors
	if meta >= f.totalSectors {
		return nil, fmt.Errorf("FAT boot sector: metadata (%d sectors) fills the whole filesystem (%d)", meta, f.totalSectors)
	}
	clusters := (f.totalSectors - meta) / uint32(f.sectorsPerCluster)
	switch {
	case clusters < 4085:
		f.bits = 12
	case clusters < 65525:
		f.bits = 16
	default:
		f.bits = 32
	}
	f.label = strings.TrimRight(string(b[labelOff:labelOff+11]), " \x00")
	return f, nil
}

// buildFAT rebuilds a FAT filesystem: mkfs.vfat with the original's FAT
// type, geometry, volume id and label, written at the partition's offset,
// then mcopy of the version's mounted tree with modification times. Both
// tools run with fixed clocks (--invariant, SOURCE_DATE_EPOCH), so the
// result is deterministic. go-diskfs's FAT writer is not used: it wrote
// FAT32 filesystems mtools cannot read (at exactly 64 MiB) and '..'
// entries fsck.fat reports.
func (e *exporter) buildFAT(pp *partPlan) error {
	boot := make([]byte, 512)
	if _, err := e.fs.Disk().ReadAt(boot, pp.part.Start); err != nil {
		return fmt.Errorf("read the FAT boot sector: %w", err)
	}
	fb, err := parseFATBoot(boot)
	if err != nil {
		return err
	}
	bps := int64(fb.bytesPerSector)
	sectors := int64(fb.totalSectors)
	if pp.grown {
		sectors = pp.newSize / bps
	}
	if sectors*bps > pp.newSize {
		return fmt.Errorf("FAT filesystem of %d sectors does not fit the partition (%d bytes)", sectors, pp.newSize)
	}
	if pp.part.Start%bps != 0 {
		return fmt.Errorf("partition start %d is not a multiple of the FAT sector size %d", pp.part.Start, bps)
	}
	args := []string{"--invariant", "-F", strconv.Itoa(fb.bits), "-S", strconv.Itoa(fb.bytesPerSector),
		"-s", strconv.Itoa(fb.sectorsPerCluster), "-R", strconv.Itoa(fb.reserved), "-f", strconv.Itoa(fb.fats),
		"-M", fmt.Sprintf("0x%02x", fb.media), "-h", strconv.FormatUint(uint64(fb.hidden), 10),
		"-i", fmt.Sprintf("%08x", fb.volumeID), fmt.Sprintf("--offset=%d", pp.part.Start/bps)}
	if fb.bits != 32 {
		args = append(args, "-r", strconv.Itoa(fb.rootEntries))
	}
	if fb.heads > 0 && fb.sectorsPerTrack > 0 {
		args = append(args, "-g", fmt.Sprintf("%d/%d", fb.heads, fb.sectorsPerTrack))
	}
	if fb.label != "" && fb.label != "NO NAME" {
		args = append(args, "-n", fb.label)
	}
	args = append(args, e.out.Name(), strconv.FormatInt(sectors*bps/1024, 10))
	if out, err := exec.CommandContext(e.ctx, "mkfs.vfat", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%w\n(mkfs.vfat %s)", toolError("mkfs.vfat", err, out), strings.Join(args, " "))
	}

	tree := filepath.Join(e.mnt, fmt.Sprintf("p%d", pp.part.Index))
	ents, err := os.ReadDir(tree)
	if err != nil {
		return err
	}
	if len(ents) == 0 {
		return nil
	}
	// No -b (batch mode): mtools 4.0.32 fails with "Streamcache allocation
	// problem" when it is combined with an @@offset image.
	cp := []string{"-i", fmt.Sprintf("%s@@%d", e.out.Name(), pp.part.Start), "-s", "-m", "-Q"}
	for _, ent := range ents {
		cp = append(cp, filepath.Join(tree, ent.Name()))
	}
	cp = append(cp, "::/")
	cmd := exec.CommandContext(e.ctx, "mcopy", cp...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1", "MTOOLSRC=/dev/null",
		"SOURCE_DATE_EPOCH="+strconv.FormatInt(latestMtime(pp)/1e9, 10))
	stop := e.watchWrites(manifestContent(pp.fs))
	out, err := cmd.CombinedOutput()
	stop()
	if err != nil {
		return toolError("mcopy", err, out)
	}
	return nil
}

// latestMtime is the version's own clock for the FAT: what mtools stamps
// on the entries it creates without a source time.
func latestMtime(pp *partPlan) int64 {
	var t int64
	for i := range pp.fs.Files {
		t = max(t, pp.fs.Files[i].Mtime)
	}
	if t < 315532800e9 { // FAT dates start in 1980
		t = 315532800e9
	}
	return t
}
