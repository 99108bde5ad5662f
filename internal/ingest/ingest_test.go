package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"math/rand"
	"path/filepath"
	"strings"
	"testing"

	"mis/chunker"
	"mis/manifest"
	"mis/repo"
)

// small test parameters keep files of a few chunks small.
var params = chunker.Params{Min: 1 << 10, Avg: 4 << 10, Max: 16 << 10}

func newWriter(t testing.TB) *repo.Writer {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	if err := repo.Init(dir, repo.InitOptions{Chunker: params}); err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	w, err := r.OpenWriter(context.Background(), "ingest test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func randomBytes(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// wantRefs cuts data on its own with a streaming chunker.
func wantRefs(t *testing.T, data []byte) []manifest.Ref {
	t.Helper()
	var out []manifest.Ref
	c := chunker.New(bytes.NewReader(data), params)
	for {
		b, err := c.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, manifest.Ref{ID: chunker.Sum(b), Size: uint32(len(b))})
	}
}

type closeCounter struct {
	io.Reader
	closed *int
}

func (c closeCounter) Close() error { *c.closed++; return nil }

func sliceOf(fs []File) iter.Seq[File] {
	return func(yield func(File) bool) {
		for _, f := range fs {
			if !yield(f) {
				return
			}
		}
	}
}

// TestStore stores files on both sides of the cut-off and checks that each
// file gets the chunks of cutting it alone, in order, with its bytes in
// the repository, and that the hooks count what was read.
func TestStore(t *testing.T) {
	const small = 64 << 10
	w := newWriter(t)
	sizes := []int{0, 1, 100, params.Min, params.Max + 7, small - 1, small, small + 1, 5 * small, 3, 200 << 10}
	contents := make([][]byte, len(sizes))
	got := make([][]manifest.Ref, len(sizes))
	doneOrder := []int{}
	closed := 0
	var files []File
	for i, n := range sizes {
		contents[i] = randomBytes(int64(i), n)
		i := i
		files = append(files, File{
			Size:  int64(n),
			Open:  func() (io.Reader, error) { return closeCounter{bytes.NewReader(contents[i]), &closed}, nil },
			Done:  func(refs []manifest.Ref) { got[i] = refs; doneOrder = append(doneOrder, i) },
			Name:  func() string { return fmt.Sprintf("file %d", i) },
			Quiet: i == 9,
		})
	}
	var progress int64
	st, err := store(context.Background(), w, params, sliceOf(files), Options{Progress: func(n int64) { progress += n }}, small)
	if err != nil {
		t.Fatal(err)
	}
	var wantBytes, wantFiles int64
	for i, n := range sizes {
		if doneOrder[i] != i {
			t.Fatalf("Done order %v", doneOrder)
		}
		want := wantRefs(t, contents[i])
		if fmt.Sprint(got[i]) != fmt.Sprint(want) {
			t.Errorf("file %d (%d bytes): refs %v, want %v", i, n, got[i], want)
		}
		if n == 0 && got[i] != nil {
			t.Errorf("empty file: refs %v, want nil", got[i])
		}
		var back []byte
		for _, r := range got[i] {
			b, err := w.Read(r.ID)
			if err != nil {
				t.Fatal(err)
			}
			back = append(back, b...)
		}
		if !bytes.Equal(back, contents[i]) {
			t.Errorf("file %d: stored bytes differ", i)
		}
		if n > 0 {
			wantFiles++
			if i != 9 {
				wantBytes += int64(n)
			}
		}
	}
	if st.Files != wantFiles || st.Bytes != wantBytes || progress != wantBytes {
		t.Errorf("stats %+v, progress %d; want %d files, %d bytes", st, progress, wantFiles, wantBytes)
	}
	if closed != int(wantFiles) {
		t.Errorf("%d readers closed, want %d", closed, wantFiles)
	}
	// Appending to one file's refs must not touch the next file's.
	next := append([]manifest.Ref(nil), got[2]...)
	_ = append(got[1], manifest.Ref{Size: 1})
	if fmt.Sprint(next) != fmt.Sprint(got[2]) {
		t.Error("appending to a file's refs changed the next file's")
	}
}

// TestStoreChangedFile: a file shorter or longer than its listed size is
// an error naming it, on both paths; Done is not called.
func TestStoreChangedFile(t *testing.T) {
	const small = 64 << 10
	for _, c := range []struct {
		name       string
		size, real int
		want       string
	}{
		{"small-shorter", 1000, 900, "900 bytes read, 1000 expected"},
		{"big-shorter", 3 * small, 2 * small, fmt.Sprintf("%d bytes read, %d expected", 2*small, 3*small)},
		{"big-longer", 3 * small, 3*small + 1, fmt.Sprintf("%d bytes read, %d expected", 3*small+1, 3*small)},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newWriter(t)
			data := randomBytes(7, c.real)
			closed := 0
			called := false
			files := []File{
				{Size: 10, Open: func() (io.Reader, error) { return bytes.NewReader(make([]byte, 10)), nil }, Done: func([]manifest.Ref) { called = true }},
				{Size: int64(c.size), Open: func() (io.Reader, error) { return closeCounter{bytes.NewReader(data), &closed}, nil },
					Done: func([]manifest.Ref) { called = true }, Name: func() string { return "the/file" }},
			}
			_, err := store(context.Background(), w, params, sliceOf(files), Options{}, small)
			if err == nil || !strings.Contains(err.Error(), "the/file: "+c.want) {
				t.Fatalf("error %v, want one naming the file and %q", err, c.want)
			}
			if called {
				t.Error("Done called after a failure")
			}
			if closed != 1 {
				t.Errorf("reader closed %d times", closed)
			}
		})
	}
}

func TestStoreOpenError(t *testing.T) {
	w := newWriter(t)
	boom := errors.New("boom")
	files := []File{{Size: 5, Open: func() (io.Reader, error) { return nil, boom }, Name: func() string { return "x" }}}
	if _, err := Store(context.Background(), w, params, sliceOf(files), Options{}); !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "x: ") {
		t.Fatalf("error %v", err)
	}
}

func TestStoreCancelled(t *testing.T) {
	w := newWriter(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	files := []File{{Size: 5, Open: func() (io.Reader, error) { return bytes.NewReader(make([]byte, 5)), nil }}}
	if _, err := Store(ctx, w, params, sliceOf(files), Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v", err)
	}
}

// expiringReader fails once its owner has moved on, like a walk's content
// reader that is valid only until the walk's callback returns.
type expiringReader struct {
	r       io.Reader
	expired *bool
}

func (e *expiringReader) Read(b []byte) (int, error) {
	if *e.expired {
		return 0, errors.New("read after the callback returned")
	}
	return e.r.Read(b)
}

// TestStorePushIterator feeds Store from a callback walk whose readers are
// valid only inside the callback, on both paths, and stops it early on an
// error.
func TestStorePushIterator(t *testing.T) {
	const small = 64 << 10
	w := newWriter(t)
	sizes := []int{10, 3 * small, 500, 2 * small}
	walk := func(fn func(data []byte) error) error {
		for i, n := range sizes {
			if err := fn(randomBytes(int64(i), n)); err != nil {
				return err
			}
		}
		return nil
	}
	var got [][]manifest.Ref
	var walkErr error
	files := func(yield func(File) bool) {
		walkErr = walk(func(data []byte) error {
			expired := false
			defer func() { expired = true }()
			k := len(got)
			got = append(got, nil)
			if !yield(File{Size: int64(len(data)),
				Open: func() (io.Reader, error) { return &expiringReader{bytes.NewReader(data), &expired}, nil },
				Done: func(refs []manifest.Ref) { got[k] = refs }}) {
				return errors.New("stopped")
			}
			return nil
		})
	}
	st, err := store(context.Background(), w, params, files, Options{}, small)
	if err != nil || walkErr != nil {
		t.Fatal(err, walkErr)
	}
	if st.Files != int64(len(sizes)) {
		t.Errorf("stats %+v", st)
	}
	for i, n := range sizes {
		if want := wantRefs(t, randomBytes(int64(i), n)); fmt.Sprint(got[i]) != fmt.Sprint(want) {
			t.Errorf("file %d: refs differ", i)
		}
	}

	// A failure stops the walk: its yield returns false.
	walkErr = nil
	sizes = []int{10, 20, 30}
	bad := 0
	files2 := func(yield func(File) bool) {
		walkErr = walk(func(data []byte) error {
			bad++
			size := int64(len(data))
			if bad == 2 {
				size++ // the second file is short
			}
			if !yield(File{Size: size, Open: func() (io.Reader, error) { return bytes.NewReader(data), nil }}) {
				return errors.New("stopped")
			}
			return nil
		})
	}
	if _, err := store(context.Background(), w, params, files2, Options{}, small); err == nil {
		t.Fatal("short file not reported")
	}
	if walkErr == nil || walkErr.Error() != "stopped" || bad != 2 {
		t.Errorf("walk after the failure: %v after %d files", walkErr, bad)
	}
}
