package fresh

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// copyBuf is the size of the reads from the disk view.
const copyBuf = 4 << 20

// copyPartition copies a partition mis does not rebuild (swap, unknown,
// ISO, squashfs, a filesystem that was not walked) from the version's disk
// view: exactly the bytes an exact export would write there, read only for
// this range, ranges the view knows as zeros skipped. A grown partition
// keeps its old content and zeros after it.
func (e *exporter) copyPartition(pp *partPlan) error {
	if pp.grown {
		e.warn("partition %d (%s) is copied as it is and not resized: only the partition grows", pp.part.Index, orUnknown(pp.part.Filesystem))
	}
	err := e.copyRange(pp.part.Start, pp.part.Size, true)
	return err
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown content"
	}
	return s
}

// copyRange copies [off, off+n) of the original disk to the same place in
// the output, skipping zeros. countProgress adds the bytes to progress.
func (e *exporter) copyRange(off, n int64, countProgress bool) error {
	v := e.fs.Disk()
	buf := make([]byte, copyBuf)
	end := off + n
	pos := off
	for pos < end {
		if err := e.ctx.Err(); err != nil {
			return err
		}
		data, ok := v.NextData(pos)
		if !ok || data >= end {
			break
		}
		if countProgress {
			e.progress(data - pos)
		}
		pos = data
		stop := min(v.NextHole(pos), end)
		for pos < stop {
			k := min(int64(len(buf)), stop-pos)
			if _, err := v.ReadAt(buf[:k], pos); err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("read disk bytes at %d: %w", pos, err)
			}
			if err := writeNonZero(e.out, buf[:k], pos); err != nil {
				return err
			}
			pos += k
			if countProgress {
				e.progress(k)
			}
		}
	}
	if countProgress && end > pos {
		e.progress(end - pos)
	}
	return nil
}

// writeNonZero writes b at off, leaving 4 KiB blocks of zeros as holes.
func writeNonZero(w io.WriterAt, b []byte, off int64) error {
	const blk = 4096
	for len(b) > 0 {
		n := min(int64(len(b)), (off/blk+1)*blk-off)
		if !isZero(b[:n]) {
			for n < int64(len(b)) {
				m := min(int64(len(b))-n, blk)
				if isZero(b[n : n+m]) {
					break
				}
				n += m
			}
			if _, err := w.WriteAt(b[:n], off); err != nil {
				return err
			}
		}
		b = b[n:]
		off += n
	}
	return nil
}

var zeros = make([]byte, 4096)

func isZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeros))
		if !bytes.Equal(b[:n], zeros[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// copyBootCode keeps what boots the disk but is no partition: the MBR's
// 440 bytes of boot code (GPT's protective MBR has them too) and, on an MBR
// disk, the gap between the MBR and the first partition, where GRUB embeds
// its core image. sfdisk wrote zeros there; everything else outside the
// partitions stays zero.
func (e *exporter) copyBootCode() error {
	if e.m.Layout.Kind == "none" {
		return nil
	}
	if err := e.copyRange(0, 440, false); err != nil {
		return err
	}
	if e.m.Layout.Kind != "mbr" {
		return nil
	}
	ss := int64(e.m.Layout.SectorSize)
	if ss == 0 {
		ss = 512
	}
	first := e.m.DiskSize
	for _, p := range e.m.Layout.Partitions {
		first = min(first, p.Start)
	}
	if first > ss {
		return e.copyRange(ss, first-ss, false)
	}
	return nil
}
