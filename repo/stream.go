package repo

import (
	"io"
	"runtime"
	"sync"

	"mis/chunker"
)

// Ref is one chunk of a stream, in order.
type Ref struct {
	ID   chunker.ID
	Size uint32
}

type streamJob struct {
	data   []byte
	id     chunker.ID
	dup    bool
	stored []byte
	flags  uint8
	err    error
	done   chan struct{}
}

var chunkBufPool sync.Pool // *[]byte

func getBuf(n int) *[]byte {
	if bp, ok := chunkBufPool.Get().(*[]byte); ok && cap(*bp) >= n {
		*bp = (*bp)[:n]
		return bp
	}
	b := make([]byte, n)
	return &b
}

// WriteStream chunks rd with the repository's parameters and stores each
// chunk. Hashing and compression run on GOMAXPROCS workers; chunks are
// appended in stream order. progress, if not nil, is called with the
// number of bytes just consumed after each chunk.
func (w *Writer) WriteStream(rd io.Reader, progress func(n int64)) ([]Ref, error) {
	c := chunker.New(rd, w.r.cfg.Chunker)
	return w.WriteChunks(c.Next, progress)
}

// WriteChunks stores the chunks next returns, in order, until it returns
// io.EOF: the caller decides the cut points (e.g. one file after another,
// each cut on its own). The slice next returns is copied before next is
// called again. Hashing and compression run on GOMAXPROCS workers; next
// runs on its own goroutine, so reading overlaps them.
func (w *Writer) WriteChunks(next func() ([]byte, error), progress func(n int64)) ([]Ref, error) {
	workers := runtime.GOMAXPROCS(0)
	jobs := make(chan *streamJob, workers)
	order := make(chan *streamJob, 2*workers)
	stop := make(chan struct{})
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }) }

	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				w.prepare(j)
				close(j.done)
			}
		}()
	}

	var readErr error
	go func() {
		defer close(order)
		defer close(jobs)
		for {
			data, err := next()
			if err == io.EOF {
				return
			}
			if err != nil {
				readErr = err
				return
			}
			bp := getBuf(len(data))
			copy(*bp, data)
			j := &streamJob{data: *bp, done: make(chan struct{})}
			select {
			case order <- j:
			case <-stop:
				return
			}
			jobs <- j
		}
	}()

	var refs []Ref
	var firstErr error
	for j := range order {
		<-j.done
		if firstErr == nil {
			firstErr = j.err
			if firstErr == nil && !j.dup {
				body := j.data
				if j.flags == flagZstd {
					body = j.stored
				}
				_, firstErr = w.appendStored(j.id, body, j.flags, len(j.data))
			}
			if firstErr == nil {
				refs = append(refs, Ref{ID: j.id, Size: uint32(len(j.data))})
				if progress != nil {
					progress(int64(len(j.data)))
				}
			} else {
				halt()
			}
		}
		if j.stored != nil {
			sp := j.stored[:0]
			storedBufPool.Put(&sp)
		}
		d := j.data
		chunkBufPool.Put(&d)
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = readErr
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return refs, nil
}

// prepare hashes a chunk and, if it is new, compresses it.
func (w *Writer) prepare(j *streamJob) {
	j.id = chunker.Sum(j.data)
	has, err := w.Has(j.id)
	if err != nil {
		j.err = err
		return
	}
	if has {
		j.dup = true
		w.countDup(len(j.data))
		return
	}
	bp := storedBufPool.Get().(*[]byte)
	stored, flags := compressChunk(w.enc, j.data, *bp)
	j.flags = flags
	if flags == flagZstd {
		j.stored = stored // returned to the pool by the appender
	} else {
		*bp = (*bp)[:0]
		storedBufPool.Put(bp)
	}
}
