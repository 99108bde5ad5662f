package image

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"path/filepath"
	"reflect"
	"testing"

	"mis/chunker"
	"mis/manifest"
	"mis/repo"
)

// Small chunks so a small disk has many of them, and chunk boundaries fall
// everywhere relative to blocks, gaps and changes.
var tinyParams = chunker.Params{Min: 256, Avg: 1024, Max: 4096}

func testWriter(t *testing.T) *repo.Writer {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	if err := repo.Init(dir, repo.InitOptions{}); err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	w, err := r.OpenWriter(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// residualOf runs the residual pass alone over disk with the given file
// content spans, and checks that the result rebuilds the disk's residual
// bytes exactly.
func residualOf(t *testing.T, w *repo.Writer, disk []byte, spans []segment, opt ImportOptions) (*manifest.Manifest, ImportStats) {
	return residualWithHoles(t, w, disk, spans, nil, opt)
}

func residualWithHoles(t *testing.T, w *repo.Writer, disk []byte, spans []segment, holes holeFinder, opt ImportOptions) (*manifest.Manifest, ImportStats) {
	t.Helper()
	im := &importer{ctx: context.Background(), w: w, params: tinyParams, name: "test", r: bytes.NewReader(disk), holes: holes,
		size: int64(len(disk)), total: int64(len(disk)), opt: opt, spans: append([]segment(nil), spans...)}
	m := &manifest.Manifest{DiskSize: int64(len(disk)), Exact: true}
	if err := im.importResidual(m); err != nil {
		t.Fatal(err)
	}
	if err := rebuildResidual(w, m, disk, spans); err != nil {
		t.Fatal(err)
	}
	return m, im.stats
}

// rebuildResidual lays the residual stream over its runs and compares
// every residual byte with the disk; the runs and spans must tile it.
func rebuildResidual(w *repo.Writer, m *manifest.Manifest, disk []byte, spans []segment) error {
	out := make([]byte, len(disk))
	covered := make([]bool, len(disk))
	jobs, err := planDisk(m) // m has residual data only
	if err != nil {
		return err
	}
	for _, j := range jobs {
		data, err := w.Read(j.Ref.ID)
		if err != nil {
			return err
		}
		for _, p := range j.Places {
			copy(out[p.DiskOff:p.DiskOff+p.Len], data[p.ChunkOff:p.ChunkOff+p.Len])
		}
	}
	for _, r := range m.Residual {
		for i := r.Off; i < r.Off+r.Len; i++ {
			if covered[i] {
				return fmt.Errorf("byte %d covered twice", i)
			}
			covered[i] = true
		}
	}
	for _, s := range spans {
		for i := s.DiskOff; i < s.DiskOff+s.Len; i++ {
			if covered[i] {
				return fmt.Errorf("residual run covers file content at %d", i)
			}
			covered[i] = true
			out[i] = disk[i]
		}
	}
	for i := range covered {
		if !covered[i] {
			return fmt.Errorf("byte %d not covered", i)
		}
	}
	if i := firstDiff(out, disk); i >= 0 {
		return fmt.Errorf("rebuilt residual differs at byte %d", i)
	}
	return nil
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// randomDisk is a disk of zero and random stretches with unaligned edges.
func randomDisk(rng *rand.Rand, size int) []byte {
	d := make([]byte, size)
	for off := 0; off < size; {
		n := min(size-off, 1+rng.Intn(40000))
		if rng.Intn(3) > 0 {
			rng.Read(d[off : off+n])
		}
		off += n
	}
	return d
}

// randomSpans returns ordered disjoint spans, half of them on block
// boundaries (files of whole blocks), the others not (slack after EOF).
func randomSpans(rng *rand.Rand, size int) []segment {
	var out []segment
	for off := rng.Intn(50000); off < size; {
		n := min(size-off, 1+rng.Intn(60000))
		s := segment{int64(off), int64(n)}
		if rng.Intn(2) == 0 {
			s = alignSpan(s)
		}
		if s.Len > 0 {
			out = append(out, s)
		}
		off += n + 1 + rng.Intn(80000)
	}
	return out
}

// alignSpan shrinks s to whole blocks.
func alignSpan(s segment) segment {
	a, b := alignUp(s.DiskOff), alignDown(s.DiskOff+s.Len)
	return segment{a, max(0, b-a)}
}

// mutateSpans drops, adds and moves some spans, keeping them disjoint.
func mutateSpans(rng *rand.Rand, spans []segment, size int) []segment {
	taken := make([]bool, size)
	var out []segment
	for _, s := range spans {
		switch rng.Intn(5) {
		case 0: // removed: the bytes become residual
			continue
		case 1: // moved edges
			cut := int64(rng.Intn(5000))
			s.DiskOff += cut
			s.Len -= cut + int64(rng.Intn(5000))
			if s.Len <= 0 {
				continue
			}
		}
		out = append(out, s)
	}
	for _, s := range out {
		for i := s.DiskOff; i < s.DiskOff+s.Len; i++ {
			taken[i] = true
		}
	}
	for range 5 { // new files over former residual
		off, n := rng.Intn(size), 1+rng.Intn(30000)
		if rng.Intn(2) == 0 {
			a := alignSpan(segment{int64(off), int64(n)})
			off, n = int(a.DiskOff), int(a.Len)
		}
		ok := off+n <= size
		for i := off; ok && i < off+n; i++ {
			ok = !taken[i]
		}
		if ok {
			for i := off; i < off+n; i++ {
				taken[i] = true
			}
		}
	}
	out = out[:0]
	for i := 0; i < size; {
		if !taken[i] {
			i++
			continue
		}
		j := i
		for j < size && taken[j] {
			j++
		}
		out = append(out, segment{int64(i), int64(j - i)})
		i = j
	}
	return out
}

// byteDiff answers Unchanged exactly from the two disks.
type byteDiff struct{ cum []int32 }

func newByteDiff(a, b []byte) *byteDiff {
	d := &byteDiff{cum: make([]int32, len(a)+1)}
	for i := range a {
		d.cum[i+1] = d.cum[i]
		if a[i] != b[i] {
			d.cum[i+1]++
		}
	}
	return d
}

func (d *byteDiff) unchanged(off, n int64) bool {
	return n > 0 && off >= 0 && off+n < int64(len(d.cum)) && d.cum[off+n] == d.cum[off]
}

// Random disks, files and changes: the residual a hint lets us reuse must
// be exactly what reading everything gives, chunk for chunk, including
// where parent residual became file content and file content residual.
func TestResidualReuseMatchesFullRead(t *testing.T) {
	w := testWriter(t)
	var reused, read, total int64
	for seed := int64(1); seed <= 40; seed++ {
		rng := rand.New(rand.NewSource(seed))
		size := 1<<20 + rng.Intn(5000)
		v1 := randomDisk(rng, size)
		spans1 := randomSpans(rng, size)
		parent, _ := residualOf(t, w, v1, spans1, ImportOptions{})

		v2 := bytes.Clone(v1)
		for range rng.Intn(6) { // rewrite or zero a few ranges
			off, n := rng.Intn(size), 1+rng.Intn(20000)
			n = min(n, size-off)
			if rng.Intn(2) == 0 {
				rng.Read(v2[off : off+n])
			} else {
				clear(v2[off : off+n])
			}
		}
		spans2 := spans1
		if seed%4 != 0 {
			spans2 = mutateSpans(rng, spans1, size)
		}
		diff := newByteDiff(v1, v2)
		want, _ := residualOf(t, w, v2, spans2, ImportOptions{Parent: parent})
		got, st := residualOf(t, w, v2, spans2, ImportOptions{Parent: parent, Unchanged: diff.unchanged})
		if !reflect.DeepEqual(want.Residual, got.Residual) {
			t.Fatalf("seed %d: residual runs differ from a full read", seed)
		}
		if !reflect.DeepEqual(want.ResidualData, got.ResidualData) {
			t.Fatalf("seed %d: residual chunks differ from a full read (%d vs %d chunks)", seed, len(want.ResidualData), len(got.ResidualData))
		}
		// A source that reports its zeros as holes, with edges anywhere
		// (as a mount's view may), classifies alike.
		holey, _ := residualWithHoles(t, w, v2, spans2, newByteHoles(v2), ImportOptions{})
		if !reflect.DeepEqual(want.Residual, holey.Residual) || !reflect.DeepEqual(want.ResidualData, holey.ResidualData) {
			t.Fatalf("seed %d: a hole finder changes the residual", seed)
		}
		reused += st.ResidualReusedBytes
		read += st.ResidualReadBytes
		total += manifest.StreamSize(got.ResidualData)
	}
	t.Logf("reused %d and read %d residual bytes for %d residual data bytes", reused, read, total)
	if reused < total/2 {
		t.Fatalf("reused only %d of %d residual data bytes", reused, total)
	}
}

// byteHoles reports every run of 100 or more zero bytes as a hole.
type byteHoles struct {
	size  int64
	holes []segment
}

func newByteHoles(d []byte) *byteHoles {
	h := &byteHoles{size: int64(len(d))}
	for i := 0; i < len(d); {
		if d[i] != 0 {
			i++
			continue
		}
		j := i
		for j < len(d) && d[j] == 0 {
			j++
		}
		if j-i >= 100 {
			h.holes = append(h.holes, segment{int64(i), int64(j - i)})
		}
		i = j
	}
	return h
}

// holeAfter returns the first hole ending after off.
func (h *byteHoles) holeAfter(off int64) (segment, bool) {
	for _, s := range h.holes {
		if s.DiskOff+s.Len > off {
			return s, true
		}
	}
	return segment{}, false
}

func (h *byteHoles) NextData(off int64) (int64, bool) {
	if s, ok := h.holeAfter(off); ok && s.DiskOff <= off {
		end := s.DiskOff + s.Len
		return end, end < h.size
	}
	return off, off < h.size
}

func (h *byteHoles) NextHole(off int64) int64 {
	if s, ok := h.holeAfter(off); ok {
		return max(off, s.DiskOff)
	}
	return h.size
}
