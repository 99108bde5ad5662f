package disk

import (
	"encoding/binary"
	"fmt"
)

// maxEBRs bounds the logical-partition chain (Linux stops at 256 partitions).
const maxEBRs = 256

func parseMBREntry(b []byte) MBREntry {
	var e MBREntry
	copy(e.Raw[:], b[:16])
	e.Status = b[0]
	copy(e.StartCHS[:], b[1:4])
	e.Type = b[4]
	copy(e.EndCHS[:], b[5:8])
	e.StartLBA = binary.LittleEndian.Uint32(b[8:12])
	e.Sectors = binary.LittleEndian.Uint32(b[12:16])
	return e
}

func parseMBR(s []byte) *MBR {
	m := &MBR{}
	copy(m.BootCode[:], s[:440])
	m.DiskSignature = binary.LittleEndian.Uint32(s[440:444])
	m.Reserved = binary.LittleEndian.Uint16(s[444:446])
	for i := range m.Entries {
		m.Entries[i] = parseMBREntry(s[446+16*i:])
	}
	m.Signature = binary.LittleEndian.Uint16(s[510:512])
	m.Protective = m.Signature == 0xaa55 && m.Entries[0].Type == 0xee
	for i := 1; i < 4; i++ {
		if m.Entries[i].Raw != ([16]byte{}) {
			m.Protective = false
		}
	}
	return m
}

func hasEE(m *MBR) bool {
	for _, e := range m.Entries {
		if e.Type == 0xee {
			return true
		}
	}
	return false
}

// validStatuses mirrors Linux: an MBR whose boot indicators are not 0x00/0x80 is no MBR.
func validStatuses(m *MBR) bool {
	for _, e := range m.Entries {
		if e.Status != 0 && e.Status != 0x80 {
			return false
		}
	}
	return true
}

func isExtended(t byte) bool { return t == 0x05 || t == 0x0f || t == 0x85 }

func (d *reader) readMBRPartitions(l *Layout) error {
	var ext *Partition
	for i := range l.MBR.Entries {
		e := l.MBR.Entries[i]
		if e.Empty() {
			continue
		}
		p := Partition{Index: i + 1, Start: int64(e.StartLBA) * 512, Size: int64(e.Sectors) * 512, MBR: &e, Extended: isExtended(e.Type)}
		l.Partitions = append(l.Partitions, p)
		if p.Extended {
			if ext != nil {
				l.warn("MBR has more than one extended partition; only entry %d is followed", ext.Index)
				continue
			}
			ext = &l.Partitions[len(l.Partitions)-1]
		}
	}
	if ext == nil {
		return nil
	}
	return d.readEBRChain(l, *ext)
}

// readEBRChain walks the linked list of EBRs inside the extended partition ext.
// Breaks and loops end the walk with a warning; the logical partitions before stay.
func (d *reader) readEBRChain(l *Layout, ext Partition) error {
	extLBA := uint64(ext.MBR.StartLBA)
	extEnd := extLBA + uint64(ext.MBR.Sectors)
	seen := map[uint64]bool{}
	next := 5
	for lba := extLBA; ; {
		if len(l.EBRs) >= maxEBRs {
			l.warn("EBR chain longer than %d records; stopped", maxEBRs)
			return nil
		}
		if seen[lba] {
			l.warn("EBR chain loops back to LBA %d; stopped after %d logical partitions", lba, next-5)
			return nil
		}
		seen[lba] = true
		if lba < extLBA || lba >= extEnd {
			l.warn("EBR at LBA %d lies outside the extended partition (LBA %d..%d); chain stopped", lba, extLBA, extEnd)
			return nil
		}
		s, err := d.read(int64(lba)*512, 512)
		if err != nil {
			return fmt.Errorf("disk: EBR of extended partition %d: %w", ext.Index, err)
		}
		if binary.LittleEndian.Uint16(s[510:]) != 0xaa55 {
			l.warn("EBR at LBA %d has no 55 aa signature; chain stopped", lba)
			return nil
		}
		ebr := EBR{Offset: int64(lba) * 512, Entries: [2]MBREntry{parseMBREntry(s[446:]), parseMBREntry(s[462:])}}
		l.EBRs = append(l.EBRs, ebr)
		data := ebr.Entries[0]
		if !data.Empty() {
			start := lba + uint64(data.StartLBA)
			l.Partitions = append(l.Partitions, Partition{
				Index: next, Start: int64(start) * 512, Size: int64(data.Sectors) * 512,
				MBR: &data, Logical: true, EBROffset: ebr.Offset,
			})
			if start+uint64(data.Sectors) > extEnd {
				l.warn("logical partition %d ends past its extended partition", next)
			}
			next++
		}
		link := ebr.Entries[1]
		if link.Empty() || !isExtended(link.Type) {
			return nil
		}
		lba = extLBA + uint64(link.StartLBA)
	}
}
