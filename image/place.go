package image

import (
	"fmt"

	"mis/manifest"
)

// segment is a stretch of the disk that takes the next Len bytes of a
// content stream.
type segment struct {
	DiskOff int64
	Len     int64
}

// placement says where part of one chunk goes: bytes [ChunkOff, ChunkOff+Len)
// of the chunk belong at disk offset DiskOff.
type placement struct {
	ChunkOff int64
	DiskOff  int64
	Len      int64
}

// chunkJob is one chunk to read and the places its bytes go.
type chunkJob struct {
	Ref    manifest.Ref
	Places []placement
}

// planStream lays a chunk stream over the disk segments it fills, in order.
// Export and the disk view of a mount both use it, so a stream is never
// interpreted two ways.
func planStream(refs []manifest.Ref, segs []segment) ([]chunkJob, error) {
	jobs := make([]chunkJob, 0, len(refs))
	si := 0
	var segUsed int64
	for _, r := range refs {
		job := chunkJob{Ref: r}
		var chunkOff int64
		for chunkOff < int64(r.Size) {
			if si >= len(segs) {
				return nil, fmt.Errorf("content stream is longer than the disk ranges it fills")
			}
			s := segs[si]
			n := min(s.Len-segUsed, int64(r.Size)-chunkOff)
			job.Places = append(job.Places, placement{ChunkOff: chunkOff, DiskOff: s.DiskOff + segUsed, Len: n})
			chunkOff += n
			segUsed += n
			if segUsed == s.Len {
				si++
				segUsed = 0
			}
		}
		jobs = append(jobs, job)
	}
	if si != len(segs) {
		return nil, fmt.Errorf("content stream is shorter than the disk ranges it fills")
	}
	return jobs, nil
}

// residualSegments returns the non-zero residual runs as segments.
func residualSegments(m *manifest.Manifest) []segment {
	var segs []segment
	for _, r := range m.Residual {
		if !r.Zero {
			segs = append(segs, segment{r.Off, r.Len})
		}
	}
	return segs
}

// fileSegments returns a file's extents as segments (extents are kept in
// file order, which is the order of its content stream).
func fileSegments(f *manifest.Entry) []segment {
	segs := make([]segment, len(f.Extents))
	for i, x := range f.Extents {
		segs[i] = segment{x.DiskOff, x.Len}
	}
	return segs
}

// planDisk returns every chunk job needed to rebuild the disk.
func planDisk(m *manifest.Manifest) ([]chunkJob, error) {
	jobs, err := planStream(m.ResidualData, residualSegments(m))
	if err != nil {
		return nil, fmt.Errorf("residual data: %w", err)
	}
	for i := range m.Filesystems {
		fs := &m.Filesystems[i]
		for j := range fs.Files {
			f := &fs.Files[j]
			if len(f.Extents) == 0 {
				continue // inline data lives in the residual inode table
			}
			fj, err := planStream(f.Content, fileSegments(f))
			if err != nil {
				return nil, fmt.Errorf("partition %d inode %d: %w", fs.PartIndex, f.Ino, err)
			}
			jobs = append(jobs, fj...)
		}
	}
	return jobs, nil
}
