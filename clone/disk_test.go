package clone

import (
	"bytes"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
)

// testBase is a base disk in a plain file, with random content, and a size
// that is not a multiple of the block size (the last block is partial).
func testBase(t *testing.T, size int) (*os.File, []byte) {
	t.Helper()
	data := make([]byte, size)
	rand.New(rand.NewSource(1)).Read(data)
	path := filepath.Join(t.TempDir(), "base.raw")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, data
}

func newStore(t *testing.T) *Store { return Open(filepath.Join(t.TempDir(), "repo")) }

func mustCreate(t *testing.T, s *Store, size int64, names ...string) {
	t.Helper()
	if _, err := s.Create(Base{VersionID: "v1", Ref: "img:v1", DiskSize: size}, names, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func mustOpen(t *testing.T, s *Store, name string, base *os.File) *Disk {
	t.Helper()
	d, err := s.OpenDisk(name, base, DiskOptions{FlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func checkDisk(t *testing.T, d *Disk, want []byte) {
	t.Helper()
	got := make([]byte, len(want))
	// Odd-sized reads at odd offsets cross blocks and layers.
	for off := 0; off < len(want); off += 9000 {
		end := min(off+9000, len(want))
		if _, err := d.ReadAt(got[off:end], int64(off)); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, want) {
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("clone %s: byte %d is %#x, want %#x", d.Name(), i, got[i], want[i])
			}
		}
	}
}

// write applies a write to both the disk and the model.
func write(t *testing.T, d *Disk, model []byte, off int, p []byte) {
	t.Helper()
	if n, err := d.WriteAt(p, int64(off)); err != nil || n != len(p) {
		t.Fatalf("write %d bytes at %d: %d, %v", len(p), off, n, err)
	}
	copy(model[off:], p)
}

func fill(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

func TestDiskPartialWritesCopyUpAndPersist(t *testing.T) {
	const size = 1<<20 + 1000
	base, data := testBase(t, size)
	s := newStore(t)
	mustCreate(t, s, size, "a")
	d := mustOpen(t, s, "a", base)
	model := append([]byte(nil), data...)
	checkDisk(t, d, model)
	write(t, d, model, 100, fill(10, 1))                     // inside one block: copy-up
	write(t, d, model, 4096*3-5, fill(4096*2+10, 2))         // partial, full, partial
	write(t, d, model, 4096*8, fill(4096, 3))                // exactly one block
	write(t, d, model, 150, fill(3, 4))                      // into a block already held
	write(t, d, model, size-10, fill(10, 5))                 // the partial last block
	write(t, d, model, 4096*20+1, fill(1, 6))                // one byte
	if _, err := d.WriteAt(fill(2, 7), size-1); err == nil { // beyond the end
		t.Fatal("a write past the end succeeded")
	}
	checkDisk(t, d, model)
	if got := d.Stats().CopyUps.Load(); got != 4 {
		t.Errorf("copy-ups: %d, want 4 (block 0, the write over blocks 2-5, the last block, block 20)", got)
	}
	if !d.Unchanged(4096*30, 4096*10) || d.Unchanged(4096*8+4095, 2) || d.Unchanged(0, 1) {
		t.Error("Unchanged does not follow the written blocks")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopened, the delta and its map give the same disk.
	d = mustOpen(t, s, "a", base)
	defer d.Close()
	checkDisk(t, d, model)
	if n := d.ChangedBlocks(); n != 1+4+1+1+1 {
		t.Errorf("changed blocks: %d, want 8", n)
	}
}

func TestDiskRandomWritesMatchModel(t *testing.T) {
	const size = 3<<20 + 123
	base, data := testBase(t, size)
	s := newStore(t)
	mustCreate(t, s, size, "r")
	d := mustOpen(t, s, "r", base)
	model := append([]byte(nil), data...)
	rng := rand.New(rand.NewSource(7))
	for i := 0; i < 2000; i++ {
		off := rng.Intn(size)
		n := 1 + rng.Intn(min(20000, size-off))
		p := make([]byte, n)
		rng.Read(p)
		write(t, d, model, off, p)
		if i%500 == 0 {
			if err := d.Sync(); err != nil {
				t.Fatal(err)
			}
		}
	}
	checkDisk(t, d, model)
	d.Close()
	d = mustOpen(t, s, "r", base)
	defer d.Close()
	checkDisk(t, d, model)
}

func TestCloneOfCloneIsolation(t *testing.T) {
	const size = 1 << 20
	base, data := testBase(t, size)
	s := newStore(t)
	mustCreate(t, s, size, "a")
	a := mustOpen(t, s, "a", base)
	ma := append([]byte(nil), data...)
	write(t, a, ma, 0, fill(5000, 1))
	// A mounted (open) clone cannot be cloned, nor removed, nor opened twice.
	if _, err := s.CreateFromClone("a", []string{"b"}, CreateOptions{}); !errors.Is(err, ErrMounted) {
		t.Fatalf("clone of an open clone: %v", err)
	}
	if err := s.Remove("a"); !errors.Is(err, ErrMounted) {
		t.Fatalf("remove of an open clone: %v", err)
	}
	if _, err := s.OpenDisk("a", base, DiskOptions{}); !errors.Is(err, ErrMounted) {
		t.Fatalf("second open: %v", err)
	}
	a.Close()
	if _, err := s.CreateFromClone("a", []string{"b", "c"}, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	mb := append([]byte(nil), ma...)
	mc := append([]byte(nil), ma...)
	a, b := mustOpen(t, s, "a", base), mustOpen(t, s, "b", base)
	write(t, a, ma, 100, fill(100, 2))  // A after the freeze
	write(t, b, mb, 4000, fill(200, 3)) // B over the frozen layer and a fresh block
	write(t, b, mb, 9000, fill(10, 4))
	checkDisk(t, a, ma)
	checkDisk(t, b, mb)
	a.Close()
	b.Close()
	// Depth: clone b again, and c (never opened) too.
	if _, err := s.CreateFromClone("b", []string{"b2"}, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateFromClone("c", []string{"c2"}, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	b2 := mustOpen(t, s, "b2", base)
	mb2 := append([]byte(nil), mb...)
	write(t, b2, mb2, 4090, fill(20, 5))
	checkDisk(t, b2, mb2)
	b2.Close()
	for name, want := range map[string][]byte{"a": ma, "b": mb, "c": mc, "c2": mc} {
		d := mustOpen(t, s, name, base)
		checkDisk(t, d, want)
		d.Close()
	}
	rec, _ := s.Get("b2")
	if len(rec.Frozen) != 2 || rec.Origin != "b" {
		t.Errorf("b2: frozen %v origin %q, want 2 layers from b", rec.Frozen, rec.Origin)
	}
	// Removing every clone removes every delta file.
	for _, n := range []string{"a", "b", "c", "b2", "c2"} {
		if err := s.Remove(n); err != nil {
			t.Fatal(err)
		}
	}
	left, _ := filepath.Glob(filepath.Join(s.deltaDir(), "*"))
	if len(left) != 0 {
		t.Errorf("delta files left after removing all clones: %v", left)
	}
}

func TestCreateRefusesBadNames(t *testing.T) {
	s := newStore(t)
	mustCreate(t, s, 4096, "ok")
	for _, names := range [][]string{{"Bad"}, {"a:b"}, {"-x"}, {"ok"}, {"x", "x"}, {}} {
		if _, err := s.Create(Base{VersionID: "v", DiskSize: 4096}, names, CreateOptions{}); err == nil {
			t.Errorf("create %q succeeded", names)
		}
	}
	check := errors.New("image name")
	if _, err := s.Create(Base{VersionID: "v", DiskSize: 4096}, []string{"y"}, CreateOptions{Check: func([]string) error { return check }}); !errors.Is(err, check) {
		t.Errorf("Check's error: %v", err)
	}
	if list, _ := s.List(); len(list) != 1 {
		t.Errorf("clones after refused creations: %d", len(list))
	}
	ids, _ := BaseVersions(s.dir.Root())
	if len(ids) != 1 || ids[0] != "v1" {
		t.Errorf("BaseVersions: %v", ids)
	}
}
