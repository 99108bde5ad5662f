package disk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"unicode/utf16"
)

const (
	gptSignature = "EFI PART"
	// maxEntryArray bounds the partition entry array a header may claim.
	maxEntryArray = 4 << 20
)

// readGPT looks for a GPT with 512-byte, then 4096-byte sectors. It returns
// nil, 0, nil when the disk has no GPT.
func (d *reader) readGPT(l *Layout, mbr *MBR) (*GPT, int, error) {
	for _, ss := range []int64{512, 4096} {
		g, err := d.readGPTSectorSize(l, mbr, ss)
		if g != nil || err != nil {
			return g, int(ss), err
		}
	}
	if hasEE(mbr) && mbr.Signature == 0xaa55 {
		return nil, 0, fmt.Errorf("disk: MBR has a 0xEE (GPT protective) entry but neither the primary nor the backup GPT is valid")
	}
	return nil, 0, nil
}

func (d *reader) readGPTSectorSize(l *Layout, mbr *MBR, ss int64) (*GPT, error) {
	if d.size < 2*ss {
		return nil, nil
	}
	prim, primEntries, primErr := d.gptHeaderAt(1, ss)
	if primErr == nil {
		g := &GPT{GPTHeader: *prim}
		if err := d.gptEntries(l, g, primEntries, ss); err != nil {
			return nil, err
		}
		d.checkBackup(l, g, primEntries, ss)
		return g, nil
	}
	// Primary bad or wiped: like Linux, fall back to the backup in the last
	// sector, but for a wiped primary only when the MBR still claims a GPT.
	lastLBA := uint64(d.size/ss) - 1
	back, backEntries, backErr := d.gptHeaderAt(lastLBA, ss)
	if primErr == errNoSignature {
		if backErr != nil {
			return nil, nil
		}
		if !hasEE(mbr) {
			l.warn("ignoring a stale backup GPT at LBA %d: no primary GPT and no 0xEE MBR entry", lastLBA)
			return nil, nil
		}
	}
	if backErr != nil {
		return nil, fmt.Errorf("disk: primary GPT invalid (%v) and backup GPT invalid (%v)", primErr, backErr)
	}
	g := &GPT{GPTHeader: *back, FromBackup: true}
	l.warn("primary GPT invalid (%v); using the backup GPT at LBA %d", primErr, lastLBA)
	if err := d.gptEntries(l, g, backEntries, ss); err != nil {
		return nil, err
	}
	// Record the primary header when it parses at all, for diagnosis.
	if h, _, err := d.gptHeaderAt(back.AlternateLBA, ss); err == nil {
		g.Backup = h
	}
	return g, nil
}

type gptError string

func (e gptError) Error() string { return string(e) }

const errNoSignature = gptError("no GPT signature")

// gptHeaderAt parses and validates the header at lba and reads its entry array.
func (d *reader) gptHeaderAt(lba uint64, ss int64) (*GPTHeader, []byte, error) {
	if lba > uint64(d.size/ss) {
		return nil, nil, fmt.Errorf("GPT header LBA %d is past the end of the image", lba)
	}
	s, err := d.read(int64(lba)*ss, ss)
	if err != nil {
		return nil, nil, err
	}
	if string(s[:8]) != gptSignature {
		return nil, nil, errNoSignature
	}
	h := &GPTHeader{
		Revision:          binary.LittleEndian.Uint32(s[8:]),
		HeaderSize:        binary.LittleEndian.Uint32(s[12:]),
		HeaderCRC:         binary.LittleEndian.Uint32(s[16:]),
		Reserved:          binary.LittleEndian.Uint32(s[20:]),
		MyLBA:             binary.LittleEndian.Uint64(s[24:]),
		AlternateLBA:      binary.LittleEndian.Uint64(s[32:]),
		FirstUsableLBA:    binary.LittleEndian.Uint64(s[40:]),
		LastUsableLBA:     binary.LittleEndian.Uint64(s[48:]),
		DiskGUID:          formatGUID(s[56:72]),
		PartitionEntryLBA: binary.LittleEndian.Uint64(s[72:]),
		NumEntries:        binary.LittleEndian.Uint32(s[80:]),
		EntrySize:         binary.LittleEndian.Uint32(s[84:]),
		EntriesCRC:        binary.LittleEndian.Uint32(s[88:]),
	}
	where := fmt.Sprintf("GPT header at LBA %d", lba)
	if h.HeaderSize < 92 || int64(h.HeaderSize) > ss {
		return nil, nil, fmt.Errorf("%s: header size %d out of range 92..%d", where, h.HeaderSize, ss)
	}
	hdr := append([]byte(nil), s[:h.HeaderSize]...)
	clear(hdr[16:20])
	if crc := crc32.ChecksumIEEE(hdr); crc != h.HeaderCRC {
		return nil, nil, fmt.Errorf("%s: header CRC %08x, computed %08x", where, h.HeaderCRC, crc)
	}
	if h.MyLBA != lba {
		return nil, nil, fmt.Errorf("%s: header says it is at LBA %d", where, h.MyLBA)
	}
	if h.EntrySize < 128 || h.EntrySize%8 != 0 {
		return nil, nil, fmt.Errorf("%s: partition entry size %d (must be a multiple of 8, at least 128)", where, h.EntrySize)
	}
	arr := uint64(h.NumEntries) * uint64(h.EntrySize)
	if arr > maxEntryArray {
		return nil, nil, fmt.Errorf("%s: partition entry array of %d x %d bytes is larger than %d", where, h.NumEntries, h.EntrySize, maxEntryArray)
	}
	if h.PartitionEntryLBA > uint64(d.size/ss) {
		return nil, nil, fmt.Errorf("%s: partition entry array at LBA %d is past the end of the image", where, h.PartitionEntryLBA)
	}
	entries, err := d.read(int64(h.PartitionEntryLBA)*ss, int64(arr))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: partition entry array: %w", where, err)
	}
	if crc := crc32.ChecksumIEEE(entries); crc != h.EntriesCRC {
		return nil, nil, fmt.Errorf("%s: partition entry array CRC %08x, computed %08x", where, h.EntriesCRC, crc)
	}
	return h, entries, nil
}

// gptEntries turns the used entries into partitions numbered by slot, as Linux does.
func (d *reader) gptEntries(l *Layout, g *GPT, entries []byte, ss int64) error {
	es := int(g.EntrySize)
	for i := 0; i < int(g.NumEntries); i++ {
		raw := entries[i*es : (i+1)*es]
		if bytes.Equal(raw[:16], make([]byte, 16)) {
			continue
		}
		e := &GPTEntry{
			TypeGUID:   formatGUID(raw[0:16]),
			PartGUID:   formatGUID(raw[16:32]),
			FirstLBA:   binary.LittleEndian.Uint64(raw[32:]),
			LastLBA:    binary.LittleEndian.Uint64(raw[40:]),
			Attributes: binary.LittleEndian.Uint64(raw[48:]),
			Raw:        append([]byte(nil), raw...),
		}
		copy(e.NameRaw[:], raw[56:128])
		e.Name = decodeName(e.NameRaw[:])
		if e.LastLBA < e.FirstLBA {
			return fmt.Errorf("disk: GPT partition %d ends (LBA %d) before it starts (LBA %d)", i+1, e.LastLBA, e.FirstLBA)
		}
		maxLBA := uint64(1<<63-1) / uint64(ss)
		if e.LastLBA >= maxLBA {
			return fmt.Errorf("disk: GPT partition %d: last LBA %d is absurd", i+1, e.LastLBA)
		}
		if e.FirstLBA < g.FirstUsableLBA || e.LastLBA > g.LastUsableLBA {
			l.warn("GPT partition %d (LBA %d..%d) lies outside the usable range %d..%d", i+1, e.FirstLBA, e.LastLBA, g.FirstUsableLBA, g.LastUsableLBA)
		}
		l.Partitions = append(l.Partitions, Partition{
			Index: i + 1,
			Start: int64(e.FirstLBA) * ss,
			Size:  int64(e.LastLBA-e.FirstLBA+1) * ss,
			GPT:   e,
		})
	}
	return nil
}

// checkBackup reads the header the primary points to and records whether it agrees.
func (d *reader) checkBackup(l *Layout, g *GPT, primEntries []byte, ss int64) {
	back, backEntries, err := d.gptHeaderAt(g.AlternateLBA, ss)
	if err != nil {
		l.warn("backup GPT at LBA %d unusable: %v", g.AlternateLBA, err)
		return
	}
	g.Backup = back
	want := g.GPTHeader
	want.MyLBA, want.AlternateLBA = g.AlternateLBA, g.MyLBA
	want.PartitionEntryLBA, want.HeaderCRC = back.PartitionEntryLBA, back.HeaderCRC
	g.BackupAgrees = *back == want && bytes.Equal(primEntries, backEntries)
	if !g.BackupAgrees {
		l.warn("backup GPT at LBA %d disagrees with the primary", g.AlternateLBA)
	}
	if last := uint64(d.size/ss) - 1; g.AlternateLBA != last {
		l.warn("backup GPT at LBA %d is not in the last sector (LBA %d)", g.AlternateLBA, last)
	}
}

// decodeName decodes a UTF-16LE partition name up to the first NUL.
func decodeName(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

// formatGUID renders a 16-byte on-disk GUID: the first three fields are little-endian.
func formatGUID(b []byte) string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x",
		binary.LittleEndian.Uint32(b[0:4]), binary.LittleEndian.Uint16(b[4:6]),
		binary.LittleEndian.Uint16(b[6:8]), b[8:10], b[10:16])
}
