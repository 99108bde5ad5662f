// Package ingest stores the content of many files in the repository
// through one repo.Writer.WriteChunks pipeline. It is the one place that
// does so: the ext importer, the walk of other filesystems (package image)
// and tree clone commits (package treeclone) all hand it their files.
//
// Each file is cut on its own, so the same file dedups against any other
// copy wherever it lies, while the work is spread: one producer goroutine
// opens and reads the files in order and finds the cut points (a file of up
// to SmallFile bytes is read whole into one reused buffer and cut in
// memory, a bigger one streams through one reused chunker), and
// WriteChunks's GOMAXPROCS workers hash and compress the chunks.
//
// The package only moves bytes. Which files to read (and which to take
// from a parent version unread) is the caller's decision, made before it
// lists them.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"sync"

	"mis/chunker"
	"mis/manifest"
	"mis/repo"
)

// SmallFile is the size up to which a file is read whole, with one read,
// into a buffer reused for every file and cut in memory; bigger files
// stream through a chunker. It is also the buffer's size.
const SmallFile = 8 << 20

// File is one file whose content Store stores.
type File struct {
	// Size is the number of bytes Open's reader yields. Fewer is an
	// error (the file changed since it was listed); so is more, for a file
	// bigger than SmallFile. A file of size 0 is not opened: Done gets nil.
	Size int64
	// Open returns the content. It is called on the pipeline's reading
	// goroutine when the file's turn comes, and the reader is read to
	// the end before the next file is opened. If the reader is an
	// io.Closer, Store closes it.
	Open func() (io.Reader, error)
	// Done receives the file's chunks in order. Store calls it, for
	// every file in order, on its caller's goroutine once all files are
	// stored, and not at all if it fails.
	Done func(refs []manifest.Ref)
	// Name names the file in errors ("inode 12 (\"etc/passwd\")"). It is
	// only called on an error; nil means "file".
	Name func() string
	// Quiet leaves the file's bytes out of Options.Progress and
	// Stats.Bytes: bytes the caller counts elsewhere (the importer's
	// inline data, which also stays in the residual inode table).
	Quiet bool
}

// Options are Store's hooks.
type Options struct {
	// Progress, if set, is called on the reading goroutine with the
	// length of each chunk as it is cut (Quiet files excepted).
	Progress func(n int64)
}

// Stats counts what Store read.
type Stats struct {
	Files int64 // files opened and read to the end
	Bytes int64 // their bytes, Quiet files excepted
}

// Store reads every file files yields, in order, and stores its chunks
// through w. ctx is checked before each file. files may be a push
// iterator over work that is still going on (a filesystem walk): it runs
// on its own coroutine and each file is read before files goes on, so a
// reader that stays valid only until yield returns is fine.
func Store(ctx context.Context, w *repo.Writer, params chunker.Params, files iter.Seq[File], opt Options) (Stats, error) {
	return store(ctx, w, params, files, opt, SmallFile)
}

func store(ctx context.Context, w *repo.Writer, params chunker.Params, files iter.Seq[File], opt Options, small int64) (Stats, error) {
	if err := params.Validate(); err != nil {
		return Stats{}, err
	}
	pull, stop := iter.Pull(files)
	defer stop()
	p := &producer{ctx: ctx, params: params, pull: pull, opt: opt, small: small}
	// WriteChunks calls next on its own goroutine. It does not return
	// before that goroutine is done today, but nothing promises it: the
	// mutex makes sure no call is under way, and none starts, once it has
	// returned, so that p, the reader and the iterator are ours again.
	var mu sync.Mutex
	finished := false
	next := func() ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		if finished {
			return nil, errors.New("ingest: pipeline already finished")
		}
		return p.next()
	}
	refs, err := w.WriteChunks(next, nil)
	mu.Lock()
	finished = true
	p.closeCurrent()
	mu.Unlock()
	if err != nil {
		return Stats{}, err
	}
	all := make([]manifest.Ref, len(refs))
	for i, r := range refs {
		all[i] = manifest.Ref{ID: r.ID, Size: r.Size}
	}
	total := 0
	for _, f := range p.files {
		total += f.chunks
	}
	if total != len(all) {
		return Stats{}, fmt.Errorf("internal error: %d chunks cut, %d stored", total, len(all))
	}
	for _, f := range p.files {
		var out []manifest.Ref
		if f.chunks > 0 {
			// Capacity clipped: an append by the owner copies rather than
			// overwriting the next file's refs.
			out = all[:f.chunks:f.chunks]
			all = all[f.chunks:]
		}
		if f.done != nil {
			f.done(out)
		}
	}
	return p.stats, nil
}

// producer is WriteChunks's next: it walks the files and cuts each.
type producer struct {
	ctx    context.Context
	params chunker.Params
	pull   func() (File, bool)
	opt    Options
	small  int64

	files []listed // every file pulled so far, in order
	stats Stats

	cur    File
	active bool      // cur is open and not yet read to the end
	closer io.Closer // cur's reader, to close
	mem    []byte    // small file: what is left to cut
	stream bool      // big file: cut by ch, reading through cr

	buf []byte           // the small-file buffer, reused
	ch  *chunker.Chunker // the streaming chunker, reused
	cr  countingReader
}

// listed is what Store keeps of a file until all are stored.
type listed struct {
	done   func([]manifest.Ref)
	chunks int
}

// next returns the next chunk of the current file, moving on to the next
// file at the end of one, and io.EOF after the last.
func (p *producer) next() ([]byte, error) {
	for {
		if p.active {
			chunk, err := p.cut()
			if err == nil {
				p.files[len(p.files)-1].chunks++
				if !p.cur.Quiet {
					p.stats.Bytes += int64(len(chunk))
					if p.opt.Progress != nil {
						p.opt.Progress(int64(len(chunk)))
					}
				}
				return chunk, nil
			}
			if err != io.EOF {
				return nil, p.fail(err)
			}
			if p.stream && p.cr.n != p.cur.Size {
				return nil, p.fail(fmt.Errorf("%d bytes read, %d expected (did it change while being stored?)", p.cr.n, p.cur.Size))
			}
			p.active = false
			p.stats.Files++
			if err := p.closeCurrent(); err != nil {
				return nil, p.fail(err)
			}
		}
		f, ok := p.pull()
		if !ok {
			return nil, io.EOF
		}
		if err := p.ctx.Err(); err != nil {
			return nil, err
		}
		p.cur = f
		p.files = append(p.files, listed{done: f.Done})
		if f.Size < 0 {
			return nil, p.fail(fmt.Errorf("negative size %d", f.Size))
		}
		if f.Size == 0 {
			continue
		}
		if err := p.open(); err != nil {
			return nil, p.fail(err)
		}
	}
}

// open opens p.cur and, if it is small, reads it whole.
func (p *producer) open() error {
	rd, err := p.cur.Open()
	if err != nil {
		return err
	}
	p.closer, _ = rd.(io.Closer)
	p.active = true
	if p.cur.Size <= p.small {
		if int64(cap(p.buf)) < p.cur.Size {
			p.buf = make([]byte, p.small)
		}
		p.mem = p.buf[:p.cur.Size]
		p.stream = false
		if n, err := io.ReadFull(rd, p.mem); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF {
				return fmt.Errorf("%d bytes read, %d expected (did it change while being stored?)", n, p.cur.Size)
			}
			return err
		}
		return nil
	}
	p.stream = true
	p.cr = countingReader{r: rd}
	if p.ch == nil {
		p.ch = chunker.New(&p.cr, p.params)
	} else {
		p.ch.Reset(&p.cr)
	}
	return nil
}

// cut returns the current file's next chunk, or io.EOF after its last.
func (p *producer) cut() ([]byte, error) {
	if p.stream {
		return p.ch.Next()
	}
	if len(p.mem) == 0 {
		return nil, io.EOF
	}
	n := chunker.Boundary(p.mem, p.params)
	chunk := p.mem[:n:n]
	p.mem = p.mem[n:]
	return chunk, nil
}

// fail names the current file in err and closes it.
func (p *producer) fail(err error) error {
	p.closeCurrent()
	p.active = false
	name := "file"
	if p.cur.Name != nil {
		name = p.cur.Name()
	}
	return fmt.Errorf("%s: %w", name, err)
}

func (p *producer) closeCurrent() error {
	c := p.closer
	p.closer = nil
	p.cr.r = nil
	if c == nil {
		return nil
	}
	return c.Close()
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	k, err := c.r.Read(b)
	c.n += int64(k)
	return k, err
}
