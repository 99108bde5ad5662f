// Package packstoretest checks a repo.PackStore against the contract in
// the interface's doc comment. A store's own test calls Run:
//
//	func TestContract(t *testing.T) {
//		packstoretest.Run(t, packstoretest.Harness{
//			New:      func(t *testing.T) repo.PackStore { return newEmptyStore(t) },
//			Leftover: func(t *testing.T, s repo.PackStore) { startUploadAndAbandonIt(t, s) },
//		})
//	}
package packstoretest

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/zeebo/blake3"

	"mis/repo"
)

// Harness says how to get stores to test.
type Harness struct {
	// New returns an empty store. Each subtest calls it once.
	New func(t *testing.T) repo.PackStore
	// Leftover, if set, leaves in s what a writer killed in the middle of
	// a Put leaves (local: a partial file in packs/tmp; S3: an incomplete
	// multipart upload). Without it, RemoveIncomplete is only checked on a
	// store without leftovers.
	Leftover func(t *testing.T, s repo.PackStore)
}

// Run runs every contract check as a subtest of t.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"PutReadRanges", testPutReadRanges},
		{"List", testList},
		{"NotExist", testNotExist},
		{"InvalidName", testInvalidName},
		{"RemoveIdempotent", testRemoveIdempotent},
		{"RePut", testRePut},
		{"FailedPut", testFailedPut},
		{"Cancelled", testCancelled},
		{"CancelDuringPut", testCancelDuringPut},
		{"ReadAfterRemove", testReadAfterRemove},
		{"RemoveIncomplete", testRemoveIncomplete},
		{"Concurrent", testConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h) })
	}
}

// pack is test content and its content-hash name.
type pack struct {
	name string
	data []byte
}

func newPack(seed uint64, size int) pack {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	sum := blake3.Sum256(data)
	return pack{name: hex.EncodeToString(sum[:]), data: data}
}

var ctx = context.Background()

func put(t *testing.T, s repo.PackStore, p pack) {
	t.Helper()
	if err := s.Put(ctx, p.name, bytes.NewReader(p.data), int64(len(p.data))); err != nil {
		t.Fatalf("put %s (%d bytes): %v", p.name, len(p.data), err)
	}
}

// listAll returns the listed names (in listing order) and sizes.
func listAll(t *testing.T, s repo.PackStore) ([]string, map[string]int64) {
	t.Helper()
	var names []string
	sizes := map[string]int64{}
	if err := s.List(ctx, func(name string, size int64) error {
		names = append(names, name)
		sizes[name] = size
		return nil
	}); err != nil {
		t.Fatalf("list: %v", err)
	}
	return names, sizes
}

func expectAbsent(t *testing.T, s repo.PackStore, name string) {
	t.Helper()
	if _, err := s.Stat(ctx, name); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat of absent pack %s: %v, want fs.ErrNotExist", name, err)
	}
	_, sizes := listAll(t, s)
	if _, ok := sizes[name]; ok {
		t.Fatalf("absent pack %s is listed", name)
	}
}

func readRange(t *testing.T, s repo.PackStore, name string, off, n int64) []byte {
	t.Helper()
	pr, err := s.Open(ctx, name)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer pr.Close()
	buf := make([]byte, n)
	got, err := pr.ReadAt(ctx, buf, off)
	if got != len(buf) {
		t.Fatalf("read %s %d+%d: %d bytes, %v", name, off, n, got, err)
	}
	return buf
}

func testPutReadRanges(t *testing.T, h Harness) {
	s := h.New(t)
	for i, size := range []int{100, 70_000, 1<<20 + 17} {
		p := newPack(uint64(i), size)
		put(t, s, p)
		if got, err := s.Stat(ctx, p.name); err != nil || got != int64(size) {
			t.Fatalf("stat: %d, %v; want %d", got, err, size)
		}
		end := int64(size)
		for _, r := range [][2]int64{{0, end}, {0, 1}, {end / 3, end / 2}, {end - 1, 1}} {
			if got := readRange(t, s, p.name, r[0], r[1]); !bytes.Equal(got, p.data[r[0]:r[0]+r[1]]) {
				t.Fatalf("pack of %d bytes, range %d+%d: wrong bytes", size, r[0], r[1])
			}
		}
		pr, err := s.Open(ctx, p.name)
		if err != nil {
			t.Fatal(err)
		}
		if pr.Size() != end {
			t.Fatalf("Size() = %d, want %d", pr.Size(), end)
		}
		buf := make([]byte, 10)
		if n, err := pr.ReadAt(ctx, buf, end-4); n != 4 || err == nil || !bytes.Equal(buf[:4], p.data[end-4:]) {
			t.Fatalf("read across the end: %d bytes, %v; want 4 bytes and an error", n, err)
		}
		if n, err := pr.ReadAt(ctx, buf, end); n != 0 || err == nil {
			t.Fatalf("read at the end: %d bytes, %v; want 0 bytes and an error", n, err)
		}
		pr.Close()
	}
}

func testList(t *testing.T, h Harness) {
	s := h.New(t)
	if names, _ := listAll(t, s); len(names) != 0 {
		t.Fatalf("new store lists %v", names)
	}
	want := map[string]int64{}
	for i := range 20 {
		p := newPack(uint64(100+i), 50+i*10)
		put(t, s, p)
		want[p.name] = int64(len(p.data))
	}
	names, sizes := listAll(t, s)
	if fmt.Sprint(sizes) != fmt.Sprint(want) {
		t.Fatalf("listed %v, want %v", sizes, want)
	}
	for i := 1; i < len(names); i++ {
		if names[i-1] >= names[i] {
			t.Fatalf("not in name order: %s before %s", names[i-1], names[i])
		}
	}
	stop := errors.New("stop here")
	calls := 0
	err := s.List(ctx, func(string, int64) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("List with fn failing: %v after %d call(s); want fn's error after 1", err, calls)
	}
}

func testNotExist(t *testing.T, h Harness) {
	s := h.New(t)
	put(t, s, newPack(1, 1000))
	missing := newPack(2, 1000).name
	if _, err := s.Open(ctx, missing); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("open of a missing pack: %v, want fs.ErrNotExist", err)
	}
	if _, err := s.Stat(ctx, missing); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat of a missing pack: %v, want fs.ErrNotExist", err)
	}
	if err := s.Remove(ctx, missing); err != nil {
		t.Fatalf("remove of a missing pack: %v, want nil", err)
	}
}

func testInvalidName(t *testing.T, h Harness) {
	s := h.New(t)
	p := newPack(3, 100)
	bad := []string{"", "ab", strings.ToUpper(p.name), p.name[:63], p.name + "0",
		"../" + p.name[3:], p.name[:62] + "/x", p.name[:63] + "g"}
	for _, name := range bad {
		checks := map[string]error{
			"put":    s.Put(ctx, name, bytes.NewReader(p.data), int64(len(p.data))),
			"remove": s.Remove(ctx, name),
		}
		_, checks["open"] = s.Open(ctx, name)
		_, checks["stat"] = s.Stat(ctx, name)
		for op, err := range checks {
			if err == nil || errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s of invalid name %q: %v; want an error that is not fs.ErrNotExist", op, name, err)
			}
		}
	}
	if names, _ := listAll(t, s); len(names) != 0 {
		t.Fatalf("invalid names stored something: %v", names)
	}
}

func testRemoveIdempotent(t *testing.T, h Harness) {
	s := h.New(t)
	p, other := newPack(4, 5000), newPack(5, 5000)
	put(t, s, p)
	put(t, s, other)
	for i := range 2 {
		if err := s.Remove(ctx, p.name); err != nil {
			t.Fatalf("remove #%d: %v", i+1, err)
		}
	}
	if _, err := s.Open(ctx, p.name); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("open after remove: %v, want fs.ErrNotExist", err)
	}
	expectAbsent(t, s, p.name)
	if got := readRange(t, s, other.name, 0, 5000); !bytes.Equal(got, other.data) {
		t.Fatal("remove damaged another pack")
	}
}

func testRePut(t *testing.T, h Harness) {
	s := h.New(t)
	p := newPack(6, 30_000)
	put(t, s, p)
	pr, err := s.Open(ctx, p.name)
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	put(t, s, p)
	names, sizes := listAll(t, s)
	if len(names) != 1 || sizes[p.name] != int64(len(p.data)) {
		t.Fatalf("after a re-put: %v", sizes)
	}
	if got := readRange(t, s, p.name, 0, int64(len(p.data))); !bytes.Equal(got, p.data) {
		t.Fatal("wrong bytes after a re-put")
	}
	buf := make([]byte, len(p.data))
	if n, err := pr.ReadAt(ctx, buf, 0); n != len(buf) || !bytes.Equal(buf, p.data) {
		t.Fatalf("a reader opened before the re-put: %d bytes, %v", n, err)
	}
}

// failingReader yields n bytes of data, then fails.
type failingReader struct {
	data []byte
	n    int
}

var errSource = errors.New("source failed")

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errSource
	}
	k := copy(p[:min(len(p), f.n)], f.data)
	f.data, f.n = f.data[k:], f.n-k
	return k, nil
}

func testFailedPut(t *testing.T, h Harness) {
	s := h.New(t)
	p := newPack(7, 200_000)
	err := s.Put(ctx, p.name, &failingReader{data: p.data, n: 100_000}, int64(len(p.data)))
	if !errors.Is(err, errSource) {
		t.Fatalf("put from a failing reader: %v, want the reader's error", err)
	}
	expectAbsent(t, s, p.name)
	if err := s.Put(ctx, p.name, bytes.NewReader(p.data[:1000]), int64(len(p.data))); err == nil {
		t.Fatal("put from a reader with fewer bytes than size: no error")
	}
	expectAbsent(t, s, p.name)
	put(t, s, p) // the name is usable afterwards
	if got := readRange(t, s, p.name, 0, int64(len(p.data))); !bytes.Equal(got, p.data) {
		t.Fatal("wrong bytes after failed puts")
	}
}

func testCancelled(t *testing.T, h Harness) {
	s := h.New(t)
	p, q := newPack(8, 10_000), newPack(9, 10_000)
	put(t, s, p)
	pr, err := s.Open(ctx, p.name)
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	checks := map[string]error{
		"put":    s.Put(cctx, q.name, bytes.NewReader(q.data), int64(len(q.data))),
		"list":   s.List(cctx, func(string, int64) error { return nil }),
		"remove": s.Remove(cctx, p.name),
	}
	_, checks["open"] = s.Open(cctx, p.name)
	_, checks["stat"] = s.Stat(cctx, p.name)
	_, checks["read"] = pr.ReadAt(cctx, make([]byte, 10), 0)
	_, checks["remove incomplete"] = s.RemoveIncomplete(cctx)
	for op, err := range checks {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: %v, want context.Canceled", op, err)
		}
	}
	expectAbsent(t, s, q.name)
}

// cancellingReader cancels its context after its first read.
type cancellingReader struct {
	r      io.Reader
	cancel context.CancelFunc
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p[:min(len(p), 4096)])
	c.cancel()
	return n, err
}

func testCancelDuringPut(t *testing.T, h Harness) {
	s := h.New(t)
	p := newPack(10, 1<<20)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &cancellingReader{r: bytes.NewReader(p.data), cancel: cancel}
	if err := s.Put(cctx, p.name, r, int64(len(p.data))); !errors.Is(err, context.Canceled) {
		t.Fatalf("put cancelled while reading: %v, want context.Canceled", err)
	}
	expectAbsent(t, s, p.name)
}

func testReadAfterRemove(t *testing.T, h Harness) {
	s := h.New(t)
	p := newPack(11, 40_000)
	put(t, s, p)
	pr, err := s.Open(ctx, p.name)
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	if err := s.Remove(ctx, p.name); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1000)
	n, err := pr.ReadAt(ctx, buf, 2000)
	switch {
	case n == len(buf) && bytes.Equal(buf, p.data[2000:3000]):
	case errors.Is(err, fs.ErrNotExist):
	default:
		t.Fatalf("read of a removed pack through an earlier handle: %d bytes, %v; want its bytes or fs.ErrNotExist", n, err)
	}
}

func testRemoveIncomplete(t *testing.T, h Harness) {
	s := h.New(t)
	if n, err := s.RemoveIncomplete(ctx); err != nil || n != 0 {
		t.Fatalf("RemoveIncomplete on a new store: %d, %v", n, err)
	}
	keep := newPack(12, 3000)
	put(t, s, keep)
	p := newPack(13, 200_000)
	s.Put(ctx, p.name, &failingReader{data: p.data, n: 100_000}, int64(len(p.data)))
	if h.Leftover != nil {
		h.Leftover(t, s)
	}
	if names, _ := listAll(t, s); len(names) != 1 || names[0] != keep.name {
		t.Fatalf("leftovers are listed: %v", names)
	}
	n, err := s.RemoveIncomplete(ctx)
	if err != nil || (h.Leftover != nil && n == 0) {
		t.Fatalf("RemoveIncomplete: removed %d, %v", n, err)
	}
	if n, err := s.RemoveIncomplete(ctx); err != nil || n != 0 {
		t.Fatalf("second RemoveIncomplete: removed %d, %v; want 0", n, err)
	}
	if got := readRange(t, s, keep.name, 0, 3000); !bytes.Equal(got, keep.data) {
		t.Fatal("RemoveIncomplete damaged a complete pack")
	}
	expectAbsent(t, s, p.name)
}

// testConcurrent puts, reads and lists from several goroutines; a listing
// must never show a pack with other than its full size.
func testConcurrent(t *testing.T, h Harness) {
	s := h.New(t)
	const workers, each = 6, 4
	sizes := sync.Map{}
	var wg sync.WaitGroup
	errs := make(chan error, workers*each+1)
	done := make(chan struct{})
	go func() { errs <- listUntil(s, &sizes, done) }()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				p := newPack(uint64(1000+w*each+i), 20_000+w*1000+i)
				sizes.Store(p.name, int64(len(p.data)))
				errs <- putAndReadBack(s, p)
			}
		}()
	}
	wg.Wait()
	close(done)
	for range workers*each + 1 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if names, _ := listAll(t, s); len(names) != workers*each {
		t.Fatalf("%d packs listed, want %d", len(names), workers*each)
	}
}

func putAndReadBack(s repo.PackStore, p pack) error {
	if err := s.Put(ctx, p.name, bytes.NewReader(p.data), int64(len(p.data))); err != nil {
		return err
	}
	pr, err := s.Open(ctx, p.name)
	if err != nil {
		return err
	}
	defer pr.Close()
	buf := make([]byte, len(p.data))
	if n, err := pr.ReadAt(ctx, buf, 0); n != len(buf) || !bytes.Equal(buf, p.data) {
		return fmt.Errorf("read back %s: %d bytes, %v", p.name, n, err)
	}
	return nil
}

// listUntil lists s until done, checking every listed pack's size.
func listUntil(s repo.PackStore, sizes *sync.Map, done chan struct{}) error {
	for {
		err := s.List(ctx, func(name string, size int64) error {
			if want, ok := sizes.Load(name); !ok || want.(int64) != size {
				return fmt.Errorf("listed %s with %d bytes while it was being put (want %v)", name, size, want)
			}
			return nil
		})
		if err != nil {
			return err
		}
		select {
		case <-done:
			return nil
		default:
		}
	}
}
