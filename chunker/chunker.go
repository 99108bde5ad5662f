package chunker

import (
	"fmt"
	"io"
)

// Chunker splits a stream into content-defined chunks (see Boundary).
type Chunker struct {
	r   io.Reader
	p   Params
	buf []byte // 2*Max bytes, allocated once
	// buf[start:end] is read but not yet returned.
	start, end int
	total      int64 // bytes read from r so far, for error messages
	eof        bool  // r reported io.EOF
	err        error // sticky: bad params or a read error
}

// New returns a Chunker reading from r. Invalid params are reported by the
// first call to Next.
func New(r io.Reader, p Params) *Chunker {
	c := &Chunker{r: r, p: p}
	if err := p.Validate(); err != nil {
		c.err = err
		return c
	}
	c.buf = make([]byte, 2*p.Max)
	return c
}

// Reset makes c read a new stream from r with the same Params, reusing its
// buffer. Chunks returned before become invalid.
func (c *Chunker) Reset(r io.Reader) {
	if c.buf == nil { // invalid params: keep reporting them
		return
	}
	*c = Chunker{r: r, p: c.p, buf: c.buf}
}

// maxEmptyReads bounds how often a reader may return (0, nil) in a row
// before we give up on it, as bufio does.
const maxEmptyReads = 100

// Next returns the next chunk, or io.EOF after the last one. The slice is
// only valid until the next call to Next. A stream shorter than Min is one
// chunk; an empty stream has none. A read error is returned (wrapped) as
// soon as it happens; no chunks are returned after it.
func (c *Chunker) Next() ([]byte, error) {
	if c.err != nil {
		return nil, c.err
	}
	if c.end-c.start < c.p.Max && !c.eof {
		if err := c.fill(); err != nil {
			c.err = err
			return nil, err
		}
	}
	if c.start == c.end {
		return nil, io.EOF
	}
	n := Boundary(c.buf[c.start:c.end], c.p)
	chunk := c.buf[c.start : c.start+n : c.start+n]
	c.start += n
	return chunk, nil
}

// fill reads until at least Max bytes are buffered or the stream ends.
func (c *Chunker) fill() error {
	// Move the unread tail to the front when Max bytes would not fit after
	// it. The tail is shorter than Max, so this copies at most Max bytes per
	// Max bytes consumed.
	if len(c.buf)-c.start < c.p.Max {
		c.end = copy(c.buf, c.buf[c.start:c.end])
		c.start = 0
	}
	empty := 0
	for c.end-c.start < c.p.Max {
		n, err := c.r.Read(c.buf[c.end:])
		c.end += n
		c.total += int64(n)
		switch {
		case err == io.EOF:
			c.eof = true
			return nil
		case err != nil:
			return fmt.Errorf("chunker: read at offset %d: %w", c.total, err)
		case n == 0:
			if empty++; empty >= maxEmptyReads {
				return fmt.Errorf("chunker: read at offset %d: %w", c.total, io.ErrNoProgress)
			}
		default:
			empty = 0
		}
	}
	return nil
}
