package image

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"mis/chunker"
	"mis/internal/durable"
	"mis/manifest"
	"mis/repo"
)

// ExportOptions tunes an export.
type ExportOptions struct {
	Progress func(done, total int64)
	Workers  int // chunk readers; default GOMAXPROCS
}

// Export rebuilds the disk image described by m into the file out. The
// image is written to a temporary file beside out and renamed into place
// only when complete and synced, so a failed or killed export never leaves
// a file that looks finished. Zero bytes are not written: out is sparse.
func Export(ctx context.Context, r *repo.Repo, m *manifest.Manifest, out string, opt ExportOptions) error {
	jobs, err := planDisk(m)
	if err != nil {
		return err
	}
	ids := make([]chunker.ID, len(jobs))
	for i, j := range jobs {
		ids[i] = j.Ref.ID
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

	tmp, err := durable.CreateOutput(out, m.DiskSize)
	if err != nil {
		return err
	}
	defer tmp.Abort()
	if err := writeJobs(ctx, r, tmp.File, jobs, locs, m.DiskSize, opt); err != nil {
		return err
	}
	return tmp.Commit()
}

// writeJobs reads chunks on several workers and writes them with WriteAt;
// placements never overlap, so order does not matter.
func writeJobs(ctx context.Context, r *repo.Repo, f *os.File, jobs []chunkJob, locs map[chunker.ID]repo.Location, total int64, opt ExportOptions) error {
	workers := opt.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	cr := r.NewChunkReader()
	defer cr.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		next     atomic.Int64
		done     atomic.Int64
		firstErr error
		errOnce  sync.Once
		progMu   sync.Mutex
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	// Zero residual runs count as done from the start.
	var placed int64
	for _, j := range jobs {
		for _, p := range j.Places {
			placed += p.Len
		}
	}
	done.Store(total - placed)

	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for {
				i := int(next.Add(1)) - 1
				if i >= len(jobs) || ctx.Err() != nil {
					return
				}
				j := jobs[i]
				data, err := cr.Read(j.Ref.ID, locs[j.Ref.ID], buf[:0])
				if err != nil {
					fail(err)
					return
				}
				buf = data
				if len(data) != int(j.Ref.Size) {
					fail(fmt.Errorf("chunk %s has %d bytes, manifest says %d", j.Ref.ID, len(data), j.Ref.Size))
					return
				}
				var n int64
				for _, p := range j.Places {
					if err := writeSparse(f, data[p.ChunkOff:p.ChunkOff+p.Len], p.DiskOff); err != nil {
						fail(err)
						return
					}
					n += p.Len
				}
				d := done.Add(n)
				if opt.Progress != nil {
					progMu.Lock()
					opt.Progress(d, total)
					progMu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// writeSparse writes b at off, skipping whole zero blocks so the output
// keeps holes where the input had zeros (the file starts all holes).
func writeSparse(f *os.File, b []byte, off int64) error {
	for len(b) > 0 {
		n := min(int64(len(b)), (off/zeroBlock+1)*zeroBlock-off)
		if !isZero(b[:n]) {
			// Extend the write over following non-zero blocks: fewer syscalls.
			for n < int64(len(b)) {
				m := min(int64(len(b))-n, zeroBlock)
				if isZero(b[n : n+m]) {
					break
				}
				n += m
			}
			if _, err := f.WriteAt(b[:n], off); err != nil {
				return err
			}
		}
		b = b[n:]
		off += n
	}
	return nil
}
