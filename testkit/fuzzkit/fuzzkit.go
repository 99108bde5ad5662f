// Package fuzzkit is test equipment for the fuzz targets of the parsers of
// untrusted bytes (disk, ext4, manifest, layer): a check that one input did
// not allocate more than a bound, and a sparse device that a few kilobytes
// of fuzz input describe (a size plus records of bytes at offsets), so the
// seeds of a 64 MiB filesystem stay small.
package fuzzkit

import (
	"encoding/binary"
	"io"
	"runtime/metrics"
	"testing"
)

// CheckAllocs fails the input if it made the process allocate more than
// limit bytes (a size field trusted too early is the usual cause). Go's
// fuzzer does not see allocations that never touch memory.
func CheckAllocs(t testing.TB, limit uint64) func() {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	before := s[0].Value.Uint64()
	return func() {
		metrics.Read(s)
		if n := s[0].Value.Uint64() - before; n > limit {
			t.Fatalf("allocated %d MiB for one input", n>>20)
		}
	}
}

// MaxSparseSize bounds the device a fuzz input describes.
const MaxSparseSize = 1 << 40

// SparseDev is a device of size bytes reading as zeros except for recs.
type SparseDev struct {
	size int64
	recs []sparseRec // later records win where they overlap
}

// sparseRec puts data at off, or n copies of fill when data is nil.
type sparseRec struct {
	off, n int64
	data   []byte
	fill   byte
}

// DecodeSparse reads records until the input ends (a truncated last
// record is cut short) onto a device of size bytes (at most
// MaxSparseSize; bytes beyond it are dropped). A record is
// uvarint(offset) uvarint(n<<1) and n bytes, or uvarint(offset)
// uvarint(n<<1|1) and one byte repeated n times (bitmap padding).
func DecodeSparse(in []byte, size int64) *SparseDev {
	d := &SparseDev{size: max(0, min(size, MaxSparseSize))}
	for len(in) > 0 {
		off, n1 := binary.Uvarint(in)
		if n1 <= 0 {
			break
		}
		ln, n2 := binary.Uvarint(in[n1:])
		if n2 <= 0 {
			break
		}
		in = in[n1+n2:]
		r := sparseRec{off: int64(min(off, uint64(d.size))), n: int64(min(ln>>1, uint64(d.size)))}
		if ln&1 == 1 {
			if len(in) == 0 {
				break
			}
			r.fill, in = in[0], in[1:]
		} else {
			r.data = in[:min(uint64(len(in)), ln>>1)]
			in = in[len(r.data):]
			r.n = int64(len(r.data))
		}
		r.n = min(r.n, d.size-r.off)
		if r.n > 0 {
			d.recs = append(d.recs, r)
		}
	}
	return d
}

// Size is the device's size in bytes.
func (d *SparseDev) Size() int64 { return d.size }

// ReadAt reads the device: zeros but where records put bytes.
func (d *SparseDev) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= d.size {
		return 0, io.EOF
	}
	n := len(p)
	if int64(n) > d.size-off {
		n = int(d.size - off)
	}
	clear(p[:n])
	end := off + int64(n)
	for _, r := range d.recs {
		rend := r.off + r.n
		if rend <= off || r.off >= end {
			continue
		}
		lo, hi := max(off, r.off), min(end, rend)
		if r.data != nil {
			copy(p[lo-off:hi-off], r.data[lo-r.off:hi-r.off])
		} else {
			dst := p[lo-off : hi-off]
			for i := range dst {
				dst[i] = r.fill
			}
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// EncodeSparse is DecodeSparse's inverse for an image: its non-zero
// stretches (zero runs shorter than 32 bytes stay inside a record), runs
// of 64 or more equal bytes as fill records.
func EncodeSparse(img []byte) []byte {
	var out []byte
	lit := func(i, end int) {
		if end > i {
			out = binary.AppendUvarint(out, uint64(i))
			out = binary.AppendUvarint(out, uint64(end-i)<<1)
			out = append(out, img[i:end]...)
		}
	}
	run := func(i int) int { // length of the run of img[i] from i
		j := i
		for j < len(img) && img[j] == img[i] {
			j++
		}
		return j - i
	}
	for i := 0; i < len(img); {
		if img[i] == 0 {
			i++
			continue
		}
		if n := run(i); n >= 64 {
			out = binary.AppendUvarint(out, uint64(i))
			out = binary.AppendUvarint(out, uint64(n)<<1|1)
			out = append(out, img[i])
			i += n
			continue
		}
		j := i
		for j < len(img) {
			if n := run(j); (img[j] == 0 && n >= 32) || (img[j] != 0 && n >= 64) {
				break
			} else {
				j += n
			}
		}
		lit(i, j)
		i = j
	}
	return out
}

func (d *SparseDev) Bytes() []byte {
	b := make([]byte, d.size)
	d.ReadAt(b, 0)
	return b
}
