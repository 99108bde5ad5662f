package manifest

import (
	"encoding/binary"
	"fmt"

	"mis/chunker"
)

// encoder appends the binary form of manifests and layers to b. Every
// field is written in a fixed order, so equal values give equal bytes.
type encoder struct{ b []byte }

func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) bytes(p []byte)   { e.uvarint(uint64(len(p))); e.b = append(e.b, p...) }
func (e *encoder) str(s string)     { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *encoder) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

// decoder reads what encoder writes. The first error sticks: later reads
// return zero values, so callers check err once per record. Nothing it
// reads is trusted: every length and count is checked against what is
// left of the input before anything is allocated.
type decoder struct {
	b   []byte
	off int
	err error
	// Slabs: one allocation serves many entries' small slices.
	refSlab    slab[Ref]
	extentSlab slab[Extent]
	pathSlab   slab[[]byte]
	xattrSlab  slab[Xattr]
	nameSlab   slab[byte]
	intern     map[string]string
	// pathBudget is what is left of the bytes paths may decode to.
	pathBudget int64
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("at byte %d: %s", d.off, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad or truncated number")
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad or truncated number")
		return 0
	}
	d.off += n
	return v
}

// u32 reads a uvarint that must fit 32 bits.
func (d *decoder) u32(what string) uint32 {
	v := d.uvarint()
	if v > 1<<32-1 {
		d.fail("%s %d does not fit 32 bits", what, v)
		return 0
	}
	return uint32(v)
}

// int reads a varint that must fit a 32-bit int (indexes, sizes of sectors).
func (d *decoder) int(what string) int {
	v := d.varint()
	if v < -1<<31 || v > 1<<31-1 {
		d.fail("%s %d out of range", what, v)
		return 0
	}
	return int(v)
}

func (d *decoder) bool() bool {
	if d.err != nil {
		return false
	}
	if d.off >= len(d.b) {
		d.fail("truncated")
		return false
	}
	c := d.b[d.off]
	d.off++
	if c > 1 {
		d.fail("flag byte %d is neither 0 nor 1", c)
	}
	return c == 1
}

func (d *decoder) raw(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b)-d.off {
		d.fail("%d bytes wanted, %d left", n, len(d.b)-d.off)
		return nil
	}
	p := d.b[d.off : d.off+n : d.off+n]
	d.off += n
	return p
}

// bytes returns a length-prefixed byte string, sharing the input's memory;
// empty is nil.
func (d *decoder) bytes() []byte {
	n := d.count(1, "byte string")
	if n == 0 {
		return nil
	}
	return d.raw(n)
}

func (d *decoder) str() string {
	p := d.bytes()
	if len(p) == 0 {
		return ""
	}
	if s, ok := d.intern[string(p)]; ok {
		return s
	}
	s := string(p)
	if len(d.intern) < 4096 {
		d.intern[s] = s
	}
	return s
}

// count reads a number of items each taking at least minBytes of input,
// refusing counts the rest of the input cannot hold.
func (d *decoder) count(minBytes int, what string) int {
	v := d.uvarint()
	if d.err != nil {
		return 0
	}
	if v > uint64(len(d.b)-d.off)/uint64(minBytes) {
		d.fail("%s count %d exceeds the %d bytes left", what, v, len(d.b)-d.off)
		return 0
	}
	return int(v)
}

func (d *decoder) id() (id chunker.ID) {
	copy(id[:], d.raw(len(id)))
	return id
}

// slab hands out small slices cut from bigger allocations. Each slice has
// its capacity capped, so appending to it never writes into a neighbour.
// Slabs start small and double, so decoding a small layer stays cheap.
type slab[T any] struct {
	buf  []T
	next int
}

func (s *slab[T]) take(n int) []T {
	if n == 0 {
		return nil
	}
	if len(s.buf) < n {
		s.next = min(max(2*s.next, 32), 8192)
		s.buf = make([]T, max(n, s.next))
	}
	out := s.buf[:n:n]
	s.buf = s.buf[n:]
	return out
}
