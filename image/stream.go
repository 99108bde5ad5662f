package image

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"runtime"
	"sort"
	"sync"

	"mis/chunker"
	"mis/manifest"
	"mis/repo"
)

// ExportStream writes the disk image described by m to w front to back:
// for a pipe, standard output or a device, where Export's out-of-order
// sparse writes are impossible. Zero ranges are written as zeros. Chunks
// are read and decompressed ahead of the writer on GOMAXPROCS workers, in
// the order the disk needs them; a chunk used at several places is kept
// until its last one is written.
func ExportStream(ctx context.Context, r *repo.Repo, m *manifest.Manifest, w io.Writer, opt ExportOptions) error {
	jobs, err := planDisk(m)
	if err != nil {
		return err
	}
	type piece struct {
		job int
		placement
	}
	var pieces []piece
	ids := make([]chunker.ID, len(jobs))
	for i, j := range jobs {
		ids[i] = j.Ref.ID
		for _, p := range j.Places {
			pieces = append(pieces, piece{i, p})
		}
	}
	sort.Slice(pieces, func(a, b int) bool { return pieces[a].DiskOff < pieces[b].DiskOff })
	// nextUse[i] is the next piece of the same chunk after piece i.
	nextUse := make([]int, len(pieces))
	last := make(map[int]int, len(jobs))
	for i := len(pieces) - 1; i >= 0; i-- {
		nextUse[i] = len(pieces)
		if n, ok := last[pieces[i].job]; ok {
			nextUse[i] = n
		}
		last[pieces[i].job] = i
	}
	locs, err := r.Lookup(ctx, ids)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if _, ok := locs[id]; !ok {
			return fmt.Errorf("chunk %s is missing from the repository (run mis verify)", id)
		}
	}
	workers := opt.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	ctx, cancel := context.WithCancel(ctx)
	cr := r.NewChunkReader()
	var readers sync.WaitGroup
	defer func() {
		cancel()
		readers.Wait() // no read outlives the chunk reader
		cr.Close()
	}()

	type future struct {
		data []byte
		err  error
		done chan struct{}
	}
	futures := map[int]*future{}
	slots := make(chan struct{}, workers)
	window := 4 * workers // chunks decoded ahead of the writer
	start := func(j int) *future {
		f := &future{done: make(chan struct{})}
		futures[j] = f
		readers.Add(1)
		go func(ref manifest.Ref) {
			defer readers.Done()
			defer close(f.done)
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				f.err = ctx.Err()
				return
			}
			defer func() { <-slots }()
			f.data, f.err = cr.Read(ref.ID, locs[ref.ID], nil)
			if f.err == nil && len(f.data) != int(ref.Size) {
				f.err = fmt.Errorf("chunk %s has %d bytes, manifest says %d", ref.ID, len(f.data), ref.Size)
			}
		}(jobs[j].Ref)
		return f
	}
	// Pieces before next have their chunk requested (or kept).
	next := 0
	schedule := func() {
		for ; next < len(pieces) && len(futures) < window; next++ {
			if j := pieces[next].job; futures[j] == nil {
				start(j)
			}
		}
	}

	bw := bufio.NewWriterSize(w, 1<<20)
	zeros := make([]byte, 1<<20)
	var pos int64
	writeZeros := func(to int64) error {
		for pos < to {
			n := min(to-pos, int64(len(zeros)))
			if _, err := bw.Write(zeros[:n]); err != nil {
				return err
			}
			pos += n
		}
		return nil
	}
	for i, p := range pieces {
		if p.DiskOff < pos {
			return fmt.Errorf("manifest places two chunks at disk offset %d", p.DiskOff)
		}
		if err := writeZeros(p.DiskOff); err != nil {
			return err
		}
		schedule()
		f := futures[p.job]
		if f == nil {
			f = start(p.job)
		}
		select {
		case <-f.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if f.err != nil {
			return f.err
		}
		if _, err := bw.Write(f.data[p.ChunkOff : p.ChunkOff+p.Len]); err != nil {
			return err
		}
		pos += p.Len
		// Kept only while its next use is among the pieces already
		// requested; otherwise requested again when the scan gets there.
		if nextUse[i] >= next {
			delete(futures, p.job)
		}
		if opt.Progress != nil {
			opt.Progress(pos, m.DiskSize)
		}
	}
	if err := writeZeros(m.DiskSize); err != nil {
		return err
	}
	return bw.Flush()
}
