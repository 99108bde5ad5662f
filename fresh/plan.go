package fresh

import (
	"fmt"
	"strings"

	"mis/manifest"
)

// how says what becomes of one partition.
type how int

const (
	copyBytes how = iota // bytes copied from the version's disk view
	buildExt             // mke2fs -d + debugfs
	buildFAT             // mkfs.vfat + mcopy
	skipPart             // an MBR extended container: sfdisk writes its EBRs
)

// partPlan is one partition of the new disk.
type partPlan struct {
	part    manifest.Partition // as in the manifest (Start, Size: the original)
	newSize int64              // its size on the new disk
	grown   bool               // the last partition, grown by --size
	how     how
	fs      *manifest.Filesystem // the walked filesystem, if any
}

// plan is the new disk: its size and what goes into each partition.
type plan struct {
	diskSize int64
	grow     int64 // bytes added to the disk (and to the last partition)
	parts    []partPlan
	total    int64 // bytes progress counts to
}

func (p *plan) needsTrees() bool {
	for _, pp := range p.parts {
		if pp.how == buildExt || pp.how == buildFAT {
			return true
		}
	}
	return false
}

func newPlan(m *manifest.Manifest, size int64) (*plan, error) {
	if size == 0 {
		size = m.DiskSize
	}
	if size < m.DiskSize {
		return nil, fmt.Errorf("size %d is smaller than the version's disk (%d bytes): shrinking is not supported", size, m.DiskSize)
	}
	ss := int64(m.Layout.SectorSize)
	if ss <= 0 {
		ss = 512
	}
	if m.Layout.Kind != "none" && size%ss != 0 {
		return nil, fmt.Errorf("size %d is not a multiple of the %d-byte sector size", size, ss)
	}
	switch m.Layout.Kind {
	case "gpt", "mbr", "none":
	default:
		return nil, fmt.Errorf("unknown partition table kind %q", m.Layout.Kind)
	}
	p := &plan{diskSize: size, grow: size - m.DiskSize}
	fsByPart := map[int]*manifest.Filesystem{}
	for i := range m.Filesystems {
		fsByPart[m.Filesystems[i].PartIndex] = &m.Filesystems[i]
	}
	// The partition that ends last grows (with the extended container
	// holding it, for a logical partition).
	var lastEnd int64
	for _, part := range m.Layout.Partitions {
		if part.Filesystem != "extended" {
			lastEnd = max(lastEnd, part.Start+part.Size)
		}
	}
	for _, part := range m.Layout.Partitions {
		pp := partPlan{part: part, newSize: part.Size, fs: fsByPart[part.Index]}
		end := part.Start + part.Size
		if p.grow > 0 && (end == lastEnd || part.Filesystem == "extended" && end >= lastEnd) {
			pp.newSize += p.grow
			pp.grown = part.Filesystem != "extended"
		}
		switch {
		case part.Filesystem == "extended":
			pp.how = skipPart
		case pp.fs != nil && strings.HasPrefix(pp.fs.Type, "ext"):
			pp.how = buildExt
		case pp.fs != nil && pp.fs.Type == "vfat":
			pp.how = buildFAT
		default:
			pp.how = copyBytes
		}
		switch pp.how {
		case buildExt, buildFAT:
			for i := range pp.fs.Files {
				p.total += manifest.StreamSize(pp.fs.Files[i].Content)
			}
		case copyBytes:
			p.total += part.Size
		}
		p.parts = append(p.parts, pp)
	}
	return p, nil
}
