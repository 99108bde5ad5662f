package manifest

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

func refsOf(sizes ...uint32) []Ref {
	out := make([]Ref, len(sizes))
	for i, s := range sizes {
		out[i] = Ref{Size: s}
		out[i].ID[0] = byte(i)
	}
	return out
}

func lay(refs []Ref, spans []Span) ([]Piece, error) {
	var got []Piece
	err := LayStream(refs, spans, func(p Piece) { got = append(got, p) })
	return got, err
}

func TestLayStream(t *testing.T) {
	// Chunks of 5, 3 and 4 bytes over ranges of 6 and 6 at 100 and 200:
	// the first range takes chunk 0 and one byte of chunk 1, the second the
	// rest of chunk 1 and chunk 2.
	got, err := lay(refsOf(5, 3, 4), []Span{{100, 6}, {200, 6}})
	if err != nil {
		t.Fatal(err)
	}
	want := []Piece{
		{Chunk: 0, ChunkOff: 0, Off: 100, Len: 5},
		{Chunk: 1, ChunkOff: 0, Off: 105, Len: 1},
		{Chunk: 1, ChunkOff: 1, Off: 200, Len: 2},
		{Chunk: 2, ChunkOff: 0, Off: 202, Len: 4},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("pieces\n got %v\nwant %v", got, want)
	}

	// One chunk over three ranges, empty ranges and chunks ignored.
	got, err = lay(refsOf(0, 10, 0), []Span{{0, 0}, {50, 2}, {60, 0}, {70, 3}, {80, 5}, {90, 0}})
	if err != nil {
		t.Fatal(err)
	}
	want = []Piece{{1, 0, 50, 2}, {1, 2, 70, 3}, {1, 5, 80, 5}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("pieces\n got %v\nwant %v", got, want)
	}

	for _, c := range []struct {
		refs  []Ref
		spans []Span
		err   string
	}{
		{refsOf(5, 3), []Span{{0, 7}}, "longer"},
		{refsOf(5), nil, "longer"},
		{refsOf(5), []Span{{0, 6}}, "shorter"},
		{nil, []Span{{0, 1}}, "shorter"},
		{refsOf(5), []Span{{0, 5}, {9, 1}}, "shorter"},
		{refsOf(5), []Span{{0, -5}}, "negative"},
	} {
		if _, err := lay(c.refs, c.spans); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%v over %v: error %v, want %q", c.refs, c.spans, err, c.err)
		}
	}
	if _, err := lay(nil, []Span{{0, 0}}); err != nil {
		t.Errorf("empty stream over empty range: %v", err)
	}
}

// TestLayStreamFillsRanges checks on random streams that the pieces
// cover the ranges exactly, in order, and each chunk exactly, in order.
func TestLayStreamFillsRanges(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for range 500 {
		var refs []Ref
		var total int64
		for range rng.IntN(20) {
			s := uint32(rng.IntN(50))
			refs = append(refs, Ref{Size: s})
			total += int64(s)
		}
		var spans []Span
		var off int64
		for left := total; left > 0 || rng.IntN(3) == 0; {
			n := min(left, int64(rng.IntN(40)))
			off += int64(rng.IntN(10))
			spans = append(spans, Span{off, n})
			off += n
			left -= n
			if left == 0 && rng.IntN(2) == 0 {
				break
			}
		}
		pieces, err := lay(refs, spans)
		if err != nil {
			t.Fatalf("%v over %v: %v", refs, spans, err)
		}
		// Walk ranges and chunks alongside the pieces.
		si, k := 0, 0
		var used, chunkOff int64
		for _, p := range pieces {
			for spans[si].Len == used {
				si, used = si+1, 0
			}
			for int64(refs[k].Size) == chunkOff {
				k, chunkOff = k+1, 0
			}
			if p.Chunk != k || p.ChunkOff != chunkOff || p.Off != spans[si].Off+used || p.Len <= 0 {
				t.Fatalf("%v over %v: piece %+v, want chunk %d+%d at %d", refs, spans, p, k, chunkOff, spans[si].Off+used)
			}
			used += p.Len
			chunkOff += p.Len
			if used > spans[si].Len || chunkOff > int64(refs[k].Size) {
				t.Fatalf("%v over %v: piece %+v overruns", refs, spans, p)
			}
		}
	}
}

func TestLayDiskAndLayFile(t *testing.T) {
	m := &Manifest{
		DiskSize: 100,
		Residual: []Run{{0, 10, false}, {10, 20, true}, {50, 50, false}},
		// 60 residual bytes: 10 at 0, 50 at 50.
		ResidualData: refsOf(40, 20),
		Filesystems: []Filesystem{{PartIndex: 1, Files: []Entry{
			{Ino: 12, Size: 30, Content: refsOf(4, 6), Extents: []Extent{{0, 30, 5}, {20, 45, 5}}},
			{Ino: 13, Size: 7, Content: refsOf(7), Flags: FlagInlineData}, // places nothing on the disk
			{Ino: 14, Size: 15, Content: refsOf(15), Extents: []Extent{{0, 35, 10}}},
		}}},
	}
	type laid struct {
		stream int // 0 residual, else inode
		p      Piece
	}
	var got []laid
	err := m.LayDisk(func(stream []Ref, p Piece) {
		id := 0
		for _, f := range m.Filesystems[0].Files {
			if len(f.Content) > 0 && &f.Content[0] == &stream[0] {
				id = int(f.Ino)
			}
		}
		got = append(got, laid{id, p})
	})
	// Inode 14 has 15 bytes for a 10-byte extent.
	if err == nil || !strings.Contains(err.Error(), "partition 1 inode 14: content stream is longer") {
		t.Fatalf("LayDisk: %v", err)
	}
	want := []laid{
		{0, Piece{0, 0, 0, 10}}, {0, Piece{0, 10, 50, 30}}, {0, Piece{1, 0, 80, 20}},
		{12, Piece{0, 0, 30, 4}}, {12, Piece{1, 0, 34, 1}}, {12, Piece{1, 1, 45, 5}},
		{14, Piece{0, 0, 35, 10}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("LayDisk pieces\n got %v\nwant %v", got, want)
	}

	var file []Piece
	if err := m.Filesystems[0].Files[0].LayFile(func(p Piece) { file = append(file, p) }); err != nil {
		t.Fatal(err)
	}
	if want := []Piece{{0, 0, 0, 4}, {1, 0, 4, 1}, {1, 1, 20, 5}}; !reflect.DeepEqual(file, want) {
		t.Errorf("LayFile extents\n got %v\nwant %v", file, want)
	}
	file = nil
	if err := m.Filesystems[0].Files[1].LayFile(func(p Piece) { file = append(file, p) }); err != nil {
		t.Fatal(err)
	}
	if want := []Piece{{0, 0, 0, 7}}; !reflect.DeepEqual(file, want) {
		t.Errorf("LayFile inline\n got %v\nwant %v", file, want)
	}

	m.Residual[2].Len = 49
	if err := m.LayDisk(func([]Ref, Piece) {}); err == nil || !strings.Contains(err.Error(), "residual data: content stream is longer") {
		t.Errorf("short residual runs: %v", err)
	}
}

// LayStream must not allocate: it runs over every chunk of an image.
func TestLayStreamAllocs(t *testing.T) {
	refs := refsOf(5, 3, 4, 9)
	spans := []Span{{100, 6}, {200, 15}}
	var n int64
	if a := testing.AllocsPerRun(100, func() {
		if err := LayStream(refs, spans, func(p Piece) { n += p.Len }); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("LayStream allocates %v times per call", a)
	}
}
