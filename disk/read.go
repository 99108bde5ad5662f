package disk

import (
	"errors"
	"fmt"
	"io"
	"sort"
)

// Read describes the disk image r of size bytes.
func Read(r io.ReaderAt, size int64) (*Layout, error) {
	if size < 512 {
		return nil, fmt.Errorf("disk: image is %d bytes, smaller than one 512-byte sector", size)
	}
	d := &reader{r: r, size: size}
	l := &Layout{Size: size, SectorSize: 512}
	sector0, err := d.read(0, 512)
	if err != nil {
		return nil, err
	}
	mbr := parseMBR(sector0)

	g, ss, err := d.readGPT(l, mbr)
	if err != nil {
		return nil, err
	}
	switch {
	case g != nil:
		l.Kind, l.SectorSize, l.GPT, l.MBR = KindGPT, ss, g, mbr
		if mbr.Signature != 0xaa55 {
			l.warn("GPT disk without a valid MBR signature in sector 0")
		} else if !mbr.Protective {
			if hasEE(mbr) {
				l.warn("GPT disk with a hybrid MBR (0xEE entry plus other entries)")
			} else {
				l.warn("GPT disk whose MBR has no 0xEE protective entry")
			}
		}
	case Probe(r, 0, size) != "":
		// A filesystem boot sector (FAT) also ends in 55 aa: the magic-number
		// probe decides before the MBR heuristics do.
		l.Kind = KindNone
	case mbr.Signature == 0xaa55 && validStatuses(mbr):
		l.Kind, l.MBR = KindMBR, mbr
		if err := d.readMBRPartitions(l); err != nil {
			return nil, err
		}
	default:
		l.Kind = KindNone
	}
	if l.Kind == KindNone {
		l.Partitions = []Partition{{Index: 0, Start: 0, Size: size}}
	}
	if err := l.check(); err != nil {
		return nil, err
	}
	for i := range l.Partitions {
		p := &l.Partitions[i]
		if !p.Extended {
			p.Filesystem = Probe(r, p.Start, p.Size)
		}
	}
	return l, nil
}

func (l *Layout) warn(format string, args ...any) {
	l.Warnings = append(l.Warnings, fmt.Sprintf(format, args...))
}

// check validates partition extents: past the end is an error, overlaps are warnings.
func (l *Layout) check() error {
	for _, p := range l.Partitions {
		if p.Start < 0 || p.Size < 0 || p.Start > l.Size || p.Size > l.Size-p.Start {
			return fmt.Errorf("disk: partition %d (bytes %d..%d) extends past the end of the %d-byte image",
				p.Index, p.Start, p.Start+p.Size, l.Size)
		}
	}
	ps := make([]Partition, 0, len(l.Partitions))
	for _, p := range l.Partitions {
		if !p.Extended && p.Size > 0 {
			ps = append(ps, p)
		}
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].Start < ps[j].Start })
	for i := 1; i < len(ps); i++ {
		if ps[i].Start < ps[i-1].End() {
			l.warn("partitions %d and %d overlap (bytes %d..%d and %d..%d)",
				ps[i-1].Index, ps[i].Index, ps[i-1].Start, ps[i-1].End(), ps[i].Start, ps[i].End())
		}
	}
	return nil
}

// reader reads bounded regions of the image with errors that say where.
type reader struct {
	r    io.ReaderAt
	size int64
}

func (d *reader) read(off, n int64) ([]byte, error) {
	if off < 0 || n < 0 || off > d.size || n > d.size-off {
		return nil, fmt.Errorf("disk: region at byte %d (+%d) lies past the end of the %d-byte image", off, n, d.size)
	}
	b := make([]byte, n)
	got, err := d.r.ReadAt(b, off)
	if got == len(b) {
		return b, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return nil, fmt.Errorf("disk: reading %d bytes at byte %d: %w", n, off, err)
}
