package treeclone

import (
	"context"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"mis/chunker"
	"mis/manifest"
	"mis/repo"
)

// smallFile: files up to this size are read whole into one reused buffer
// and cut in memory; bigger ones stream through one reused chunker.
const smallFile = 4 << 20

// storeContent chunks every pending upper file, each cut on its own (so a
// file dedups against the base wherever it lay), through one WriteChunks
// pipeline: hashing and compression run on parallel workers while the
// next file is read.
func storeContent(ctx context.Context, w *repo.Writer, params chunker.Params, fss []manifest.Filesystem, pending []pendingFile, st *CommitStats) error {
	if len(pending) == 0 {
		return nil
	}
	counts := make([]int, len(pending))
	var (
		fi   = -1
		cur  func() ([]byte, error)
		file *os.File
		read int64
		buf  []byte
		ch   *chunker.Chunker
	)
	closeFile := func() {
		if file != nil {
			file.Close()
			file = nil
		}
	}
	// No deferred close: after an error WriteChunks may return while next
	// still runs on its goroutine; an abandoned file is closed by the GC.
	open := func(p *pendingFile) error {
		f, err := os.OpenFile(p.abs, os.O_RDONLY|unix.O_NOATIME|unix.O_NOFOLLOW, 0)
		if err != nil {
			return err
		}
		file, read = f, 0
		if p.size <= smallFile {
			if cap(buf) < int(p.size) {
				buf = make([]byte, smallFile)
			}
			data := buf[:p.size]
			if _, err := io.ReadFull(f, data); err != nil {
				return fmt.Errorf("read: %w (did it change during the commit?)", err)
			}
			read = p.size
			cur = func() ([]byte, error) {
				if len(data) == 0 {
					return nil, io.EOF
				}
				n := chunker.Boundary(data, params)
				out := data[:n]
				data = data[n:]
				return out, nil
			}
			return nil
		}
		counted := &countingReader{r: f, n: &read}
		if ch == nil {
			ch = chunker.New(counted, params)
		} else {
			ch.Reset(counted)
		}
		cur = ch.Next
		return nil
	}
	next := func() ([]byte, error) {
		for {
			if cur != nil {
				data, err := cur()
				if err == nil {
					counts[fi]++
					return data, nil
				}
				if err != io.EOF {
					return nil, fmt.Errorf("%s: %w", pending[fi].abs, err)
				}
				if read != pending[fi].size {
					return nil, fmt.Errorf("%s: read %d bytes but it had %d when walked (it changed during the commit)", pending[fi].abs, read, pending[fi].size)
				}
				st.FilesRead++
				st.BytesRead += read
				cur = nil
				closeFile()
			}
			fi++
			if fi >= len(pending) {
				return nil, io.EOF
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if err := open(&pending[fi]); err != nil {
				return nil, fmt.Errorf("%s: %w", pending[fi].abs, err)
			}
		}
	}
	refs, err := w.WriteChunks(next, nil)
	if err != nil {
		return err
	}
	for i, p := range pending {
		e := &fss[p.fs].Files[p.entry]
		e.Content = make([]manifest.Ref, counts[i])
		for k := range counts[i] {
			e.Content[k] = manifest.Ref{ID: refs[k].ID, Size: refs[k].Size}
		}
		e.Extents = nil
		refs = refs[counts[i]:]
	}
	return nil
}

type countingReader struct {
	r io.Reader
	n *int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	*c.n += int64(k)
	return k, err
}
