package image

import (
	"mis/chunker"
	"mis/manifest"
)

// segment is a stretch of the disk that takes the next Len bytes of a
// content stream (import's form of manifest.Span).
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

// planDisk returns the chunk jobs that rebuild the disk: every piece
// manifest.LayDisk lays, grouped by chunk so each chunk is read and
// decompressed once however often the disk repeats it. The placements of
// all jobs share one array.
func planDisk(m *manifest.Manifest) ([]chunkJob, error) {
	// Sizes from above: at most one job per chunk, one piece per chunk
	// plus one per range it fills.
	refs, spans := len(m.ResidualData), len(m.Residual)
	for i := range m.Filesystems {
		for j := range m.Filesystems[i].Files {
			f := &m.Filesystems[i].Files[j]
			if len(f.Extents) > 0 {
				refs += len(f.Content)
				spans += len(f.Extents)
			}
		}
	}
	bound := refs + spans
	var (
		jobs   = make([]chunkJob, 0, refs)
		counts = make([]int32, 0, refs)
		byID   = make(map[chunker.ID]int32, refs)
		flat   = make([]placement, 0, bound)
		owner  = make([]int32, 0, bound) // the job of each flat placement
		cur    int32
	)
	err := m.LayDisk(func(stream []manifest.Ref, p manifest.Piece) {
		if p.ChunkOff == 0 { // a new chunk; later pieces of it follow at once
			r := stream[p.Chunk]
			j, ok := byID[r.ID]
			if !ok {
				j = int32(len(jobs))
				byID[r.ID] = j
				jobs = append(jobs, chunkJob{Ref: r})
				counts = append(counts, 0)
			}
			cur = j
		}
		counts[cur]++
		owner = append(owner, cur)
		flat = append(flat, placement{ChunkOff: p.ChunkOff, DiskOff: p.Off, Len: p.Len})
	})
	if err != nil {
		return nil, err
	}
	places := make([]placement, len(flat))
	var start int32
	for j := range jobs {
		end := start + counts[j]
		jobs[j].Places = places[start:start:end]
		start = end
	}
	for i, p := range flat {
		j := owner[i]
		jobs[j].Places = append(jobs[j].Places, p)
	}
	return jobs, nil
}
