package s3store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"testing"

	"mis/s3store/s3test"
)

const mib = 1 << 20

func multipartOptions() Options {
	return Options{MultipartThreshold: 5 * mib, PartSize: 5 * mib, Parallel: 2}
}

// TestMultipart puts packs above the threshold (as multipart uploads,
// from an in-memory reader, a plain reader and a partly consumed
// in-memory reader) and reads them back across part boundaries.
func TestMultipart(t *testing.T) {
	srv := s3test.Start(t)
	s := newStore(t, srv, "", multipartOptions())
	ctx := context.Background()

	a, b, c := testPack(1, 5*mib+1), testPack(2, 12*mib+345), testPack(3, 11*mib)
	if err := s.Put(ctx, a.name, bytes.NewReader(a.data), int64(len(a.data))); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, b.name, struct{ io.Reader }{bytes.NewReader(b.data)}, int64(len(b.data))); err != nil {
		t.Fatal(err)
	}
	// A bytes.Reader already advanced past 100 bytes of something else,
	// and holding more than size bytes.
	br := bytes.NewReader(append(append(bytes.Repeat([]byte{'x'}, 100), c.data...), "trailing"...))
	br.Seek(100, io.SeekStart)
	if err := s.Put(ctx, c.name, br, int64(len(c.data))); err != nil {
		t.Fatal(err)
	}

	want := map[string]int64{a.name: int64(len(a.data)), b.name: int64(len(b.data)), c.name: int64(len(c.data))}
	if got := listNames(t, s); len(got) != 3 || got[a.name] != want[a.name] || got[b.name] != want[b.name] || got[c.name] != want[c.name] {
		t.Fatalf("listed %v, want %v", got, want)
	}
	for _, p := range []pack{a, b, c} {
		got, err := readAll(ctx, s, p.name)
		if err != nil || !bytes.Equal(got, p.data) {
			t.Fatalf("pack of %d bytes read back wrong: %v", len(p.data), err)
		}
		pr, err := s.Open(ctx, p.name)
		if err != nil {
			t.Fatal(err)
		}
		for _, off := range []int64{5*mib - 10, 10*mib - 3, int64(len(p.data)) - 20} {
			if off < 0 || off+20 > int64(len(p.data)) {
				continue
			}
			buf := make([]byte, 20)
			if n, err := pr.ReadAt(ctx, buf, off); n != 20 || !bytes.Equal(buf, p.data[off:off+20]) {
				t.Fatalf("range %d+20 across a part boundary: %d, %v", off, n, err)
			}
		}
	}
	if u := uploads(t, s); len(u) != 0 {
		t.Fatalf("uploads left after complete puts: %v", u)
	}
}

// TestMultipartFailures: a reader failing in the second part, a reader
// ending early and a context cancelled mid-upload each leave nothing
// visible and no incomplete upload (Put aborts it).
func TestMultipartFailures(t *testing.T) {
	srv := s3test.Start(t)
	s := newStore(t, srv, "p/", multipartOptions())
	ctx := context.Background()
	p := testPack(4, 12*mib)
	size := int64(len(p.data))
	errSource := errors.New("source failed")

	check := func(what string, err error, is error) {
		t.Helper()
		if err == nil || !errors.Is(err, is) || errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s: %v; want an error wrapping %v", what, err, is)
		}
		if _, err := s.Stat(ctx, p.name); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s: stat afterwards: %v, want not-exist", what, err)
		}
		if got := listNames(t, s); len(got) != 0 {
			t.Fatalf("%s: listed %v", what, got)
		}
		if u := uploads(t, s); len(u) != 0 {
			t.Fatalf("%s: the upload was not aborted: %v", what, u)
		}
	}

	r := io.MultiReader(bytes.NewReader(p.data[:7*mib]), errReader{errSource})
	check("reader failing at 7 MiB", s.Put(ctx, p.name, r, size), errSource)

	check("reader ending at 6 MiB", s.Put(ctx, p.name, bytes.NewReader(p.data[:6*mib]), size), io.ErrUnexpectedEOF)
	check("plain reader ending at 6 MiB", s.Put(ctx, p.name, struct{ io.Reader }{bytes.NewReader(p.data[:6*mib])}, size), io.ErrUnexpectedEOF)

	cctx, cancel := context.WithCancel(ctx)
	r = io.MultiReader(bytes.NewReader(p.data[:6*mib]), cancelReader{cancel}, bytes.NewReader(p.data[6*mib:]))
	check("context cancelled at 6 MiB", s.Put(cctx, p.name, r, size), context.Canceled)

	if err := s.Put(ctx, p.name, bytes.NewReader(p.data), size); err != nil {
		t.Fatal(err)
	}
	if got, err := readAll(ctx, s, p.name); err != nil || !bytes.Equal(got, p.data) {
		t.Fatalf("after the failures, the pack reads back wrong: %v", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// cancelReader cancels when first read and yields nothing (EOF), so the
// next reader of a MultiReader follows.
type cancelReader struct{ cancel context.CancelFunc }

func (c cancelReader) Read([]byte) (int, error) { c.cancel(); return 0, io.EOF }

// TestPaging lists packs and incomplete uploads in pages of 3 (S3 gives
// at most 1000 a request): every pack once, in order, and every upload
// aborted. (Paging uploads with the markers the server returns fails on
// versitygw 1.8.0, "400 InvalidArgument: Invalid uploadId marker", which
// is why RemoveIncomplete lists again from the start after each page.)
func TestPaging(t *testing.T) {
	srv := s3test.Start(t)
	s := newStore(t, srv, "paged/", Options{})
	s.listPage = 3
	ctx := context.Background()
	want := map[string]int64{}
	for i := range 11 {
		p := testPack(uint64(80+i), 100+i)
		if err := s.Put(ctx, p.name, bytes.NewReader(p.data), int64(len(p.data))); err != nil {
			t.Fatal(err)
		}
		want[p.name] = int64(len(p.data))
	}
	var names []string
	if err := s.List(ctx, func(name string, size int64) error {
		if want[name] != size {
			t.Errorf("listed %s with %d bytes", name, size)
		}
		names = append(names, name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(names) != len(want) {
		t.Fatalf("listed %d packs in pages of 3, want %d", len(names), len(want))
	}
	for i := 1; i < len(names); i++ {
		if names[i-1] >= names[i] {
			t.Fatalf("not in name order: %v", names)
		}
	}
	for i := range 7 { // two uploads of one name, five of others
		name := testPack(uint64(90+i%6), 10).name
		if _, err := s.core.NewMultipartUpload(ctx, s.bucket, s.key(name), minioPutOpts()); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.RemoveIncomplete(ctx); err != nil || n != 7 {
		t.Fatalf("RemoveIncomplete in pages of 3: %d, %v; want 7", n, err)
	}
	if u := uploads(t, s); len(u) != 0 {
		t.Fatalf("left: %v", u)
	}
}
