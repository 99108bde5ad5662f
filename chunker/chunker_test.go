package chunker

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"testing"
	"testing/iotest"
)

// small params make many chunks out of little data, so tests stay fast.
var small = Params{Min: 256, Avg: 1024, Max: 4096}

// chunkStream chunks r and returns copies of the chunks.
func chunkStream(t testing.TB, r io.Reader, p Params) [][]byte {
	t.Helper()
	c := New(r, p)
	var chunks [][]byte
	for {
		b, err := c.Next()
		if err == io.EOF {
			return chunks
		}
		if err != nil {
			t.Fatalf("Next after %d chunks: %v", len(chunks), err)
		}
		chunks = append(chunks, bytes.Clone(b))
	}
}

func lengths(chunks [][]byte) []int {
	n := make([]int, len(chunks))
	for i, c := range chunks {
		n[i] = len(c)
	}
	return n
}

// boundaryLengths cuts data with Boundary alone, the way a caller holding
// the whole input would.
func boundaryLengths(data []byte, p Params) []int {
	var n []int
	for len(data) > 0 {
		l := Boundary(data, p)
		n = append(n, l)
		data = data[l:]
	}
	return n
}

// checkInvariants verifies the properties every chunking must have.
func checkInvariants(t testing.TB, data []byte, chunks [][]byte, p Params) {
	t.Helper()
	if got := bytes.Join(chunks, nil); !bytes.Equal(got, data) {
		t.Fatalf("concatenated chunks (%d bytes) differ from input (%d bytes)", len(got), len(data))
	}
	for i, c := range chunks {
		last := i == len(chunks)-1
		if len(c) == 0 || len(c) > p.Max || (!last && len(c) < p.Min) {
			t.Fatalf("chunk %d of %d has size %d, outside [%d, %d]", i, len(chunks), len(c), p.Min, p.Max)
		}
	}
	if want := boundaryLengths(data, p); !slices.Equal(lengths(chunks), want) {
		t.Fatalf("Chunker cut %v, Boundary cut %v", lengths(chunks), want)
	}
}

func TestInvariants(t *testing.T) {
	data := mixedData(7, 4<<20)
	for _, p := range []Params{small, {Min: 64, Avg: 128, Max: 256}, {Min: 2048, Avg: 4096, Max: 65536}, DefaultParams()} {
		t.Run(p.String(), func(t *testing.T) {
			chunks := chunkStream(t, bytes.NewReader(data), p)
			checkInvariants(t, data, chunks, p)
			mean := len(data) / len(chunks)
			t.Logf("%d chunks, mean size %d", len(chunks), mean)
			// Normalized chunking keeps the mean near Avg; far off means the
			// masks or the cut rule are wrong.
			if mean < p.Avg/2 || mean > 2*p.Avg {
				t.Errorf("mean chunk size %d is far from avg %d", mean, p.Avg)
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	data := mixedData(3, 1<<20)
	a := lengths(chunkStream(t, bytes.NewReader(data), small))
	b := lengths(chunkStream(t, bytes.NewReader(bytes.Clone(data)), small))
	if !slices.Equal(a, b) {
		t.Fatalf("same input, different cuts:\n%v\n%v", a, b)
	}
}

func TestShortReads(t *testing.T) {
	data := mixedData(5, 256<<10)
	want := lengths(chunkStream(t, bytes.NewReader(data), small))
	readers := map[string]func() io.Reader{
		"OneByte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data)) },
		"Half":    func() io.Reader { return iotest.HalfReader(bytes.NewReader(data)) },
		"DataErr": func() io.Reader { return iotest.DataErrReader(bytes.NewReader(data)) },
		"Odd":     func() io.Reader { return &oddReader{data: data} },
	}
	for name, r := range readers {
		t.Run(name, func(t *testing.T) {
			chunks := chunkStream(t, r(), small)
			checkInvariants(t, data, chunks, small)
			if got := lengths(chunks); !slices.Equal(got, want) {
				t.Fatalf("cuts differ from whole-buffer reader:\n got %v\nwant %v", got, want)
			}
		})
	}
}

// oddReader returns reads of varying sizes, including empty ones.
type oddReader struct {
	data []byte
	n    int
}

func (r *oddReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	r.n++
	k := min(len(p), len(r.data), r.n*37%5000)
	copy(p, r.data[:k])
	r.data = r.data[k:]
	return k, nil
}

func TestTinyAndEdgeSizes(t *testing.T) {
	p := small
	src := mixedData(11, 3*p.Max)
	for _, n := range []int{1, 2, p.Min - 1, p.Min, p.Min + 1, p.Avg, p.Max - 1, p.Max, p.Max + 1, 2*p.Max - 1, 2 * p.Max, 2*p.Max + 1, 3 * p.Max} {
		data := src[:n]
		chunks := chunkStream(t, bytes.NewReader(data), p)
		checkInvariants(t, data, chunks, p)
		if n <= p.Min && len(chunks) != 1 {
			t.Errorf("%d bytes (<= min) gave %d chunks, want 1", n, len(chunks))
		}
	}
}

func TestEmptyInput(t *testing.T) {
	c := New(bytes.NewReader(nil), small)
	for i := 0; i < 3; i++ {
		if b, err := c.Next(); err != io.EOF || b != nil {
			t.Fatalf("call %d on empty stream: %d bytes, %v; want io.EOF", i, len(b), err)
		}
	}
	if n := Boundary(nil, small); n != 0 {
		t.Fatalf("Boundary(nil) = %d", n)
	}
}

func TestZerosCutAtMax(t *testing.T) {
	// A constant run drives the gear hash to a fixed point; for zeros that
	// point does not match the masks, so zero runs cut at Max. Disk images
	// are full of zeros: this keeps their chunk count minimal.
	p := DefaultParams()
	data := make([]byte, 4*p.Max+123)
	got := lengths(chunkStream(t, bytes.NewReader(data), p))
	want := []int{p.Max, p.Max, p.Max, p.Max, 123}
	if !slices.Equal(got, want) {
		t.Fatalf("zeros cut as %v, want %v", got, want)
	}
}

// sharedFraction returns the fraction of bytes in b's chunks whose content
// also occurs as a chunk of a.
func sharedFraction(a, b [][]byte) float64 {
	seen := make(map[ID]bool, len(a))
	for _, c := range a {
		seen[Sum(c)] = true
	}
	var shared, total int
	for _, c := range b {
		total += len(c)
		if seen[Sum(c)] {
			shared += len(c)
		}
	}
	return float64(shared) / float64(total)
}

func TestStableUnderInsertion(t *testing.T) {
	data := mixedData(13, 8<<20)
	for _, p := range []Params{small, DefaultParams()} {
		orig := chunkStream(t, bytes.NewReader(data), p)
		edits := map[string][]byte{
			"start":  concat([]byte("xyz"), data),
			"middle": concat(data[:len(data)/2], []byte("hello"), data[len(data)/2:]),
			"delete": concat(data[:len(data)/3], data[len(data)/3+7:]),
		}
		for name, edited := range edits {
			f := sharedFraction(orig, chunkStream(t, bytes.NewReader(edited), p))
			t.Logf("%v, %s: %.4f of bytes shared", p, name, f)
			if f < 0.9 {
				t.Errorf("%v, edit at %s: only %.3f of bytes in shared chunks, want > 0.9", p, name, f)
			}
		}
	}
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestReadError(t *testing.T) {
	boom := errors.New("disk on fire")
	data := mixedData(17, 3*small.Max)
	c := New(io.MultiReader(bytes.NewReader(data), iotest.ErrReader(boom)), small)
	var err error
	for err == nil {
		_, err = c.Next()
	}
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want the reader's error", err)
	}
	if _, again := c.Next(); !errors.Is(again, boom) {
		t.Fatalf("error not sticky: second call gave %v", again)
	}
}

// stuckReader never makes progress.
type stuckReader struct{}

func (stuckReader) Read([]byte) (int, error) { return 0, nil }

func TestNoProgressReader(t *testing.T) {
	if _, err := New(stuckReader{}, small).Next(); !errors.Is(err, io.ErrNoProgress) {
		t.Fatalf("got %v, want io.ErrNoProgress", err)
	}
}

func TestNextDoesNotAllocate(t *testing.T) {
	// 1 MiB at ~1 KiB per chunk outlasts the 201 calls AllocsPerRun makes.
	c := New(bytes.NewReader(mixedData(19, 1<<20)), small)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := c.Next(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Next allocates %.1f times per call", allocs)
	}
}

func TestReset(t *testing.T) {
	a, b := mixedData(37, 300<<10), mixedData(41, 200<<10)
	c := New(bytes.NewReader(a), small)
	if _, err := c.Next(); err != nil { // leave a half-read stream behind
		t.Fatal(err)
	}
	c.Reset(bytes.NewReader(b))
	var got [][]byte
	for {
		chunk, err := c.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, bytes.Clone(chunk))
	}
	checkInvariants(t, b, got, small)
}
