package repo

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"mis/internal/durable"
)

// PackStore is where pack files live. Packs are immutable once committed
// and are addressed by name (64 lowercase hex digits, the BLAKE3 of the
// pack's content). The interface is deliberately small so that an object
// store (S3 and the like: PUT of a whole object, ranged GET, LIST, DELETE)
// can implement it later.
type PackStore interface {
	// Create starts a new pack. Nothing is visible under any name until
	// Commit returns.
	Create() (PackWriter, error)
	// Open opens a committed pack for random reads.
	Open(name string) (PackReader, error)
	// List calls fn for every committed pack, in name order.
	List(fn func(name string, size int64) error) error
	// Remove deletes a committed pack.
	Remove(name string) error
}

// PackWriter receives the bytes of one pack.
type PackWriter interface {
	io.Writer
	// Commit makes the pack durable under name: after it returns, the
	// pack survives a crash (local: fsync file, rename, fsync directory).
	Commit(name string) error
	// Abort discards the pack. It is a no-op after Commit.
	Abort()
}

// PackReader reads a committed pack.
type PackReader interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

const tmpDirName = "tmp"

// LocalPackStore keeps packs in a directory as <2 hex>/<64 hex>.pack,
// with uncommitted packs in tmp/.
type LocalPackStore struct {
	dir string
}

// NewLocalPackStore returns a store rooted at dir (the repository's packs/).
func NewLocalPackStore(dir string) *LocalPackStore { return &LocalPackStore{dir: dir} }

func (s *LocalPackStore) path(name string) string {
	return filepath.Join(s.dir, name[:2], name+".pack")
}

// Create implements PackStore.
func (s *LocalPackStore) Create() (PackWriter, error) {
	tmpDir := filepath.Join(s.dir, tmpDirName)
	if err := os.MkdirAll(tmpDir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(tmpDir, "pack-*")
	if err != nil {
		return nil, err
	}
	return &localPackWriter{s: s, f: f}, nil
}

// CleanTmp removes packs left in tmp/ by writers that never committed
// them. Only the repository writer may call it (it holds the writer lock).
func (s *LocalPackStore) CleanTmp() (removed int, err error) {
	tmpDir := filepath.Join(s.dir, tmpDirName)
	entries, err := os.ReadDir(tmpDir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		if err := os.Remove(filepath.Join(tmpDir, e.Name())); err != nil {
			return removed, err
		}
		removed++
	}
	return removed, nil
}

type localPackWriter struct {
	s    *LocalPackStore
	f    *os.File
	done bool
}

func (w *localPackWriter) Write(p []byte) (int, error) { return w.f.Write(p) }

func (w *localPackWriter) Commit(name string) error {
	if !validPackName(name) {
		return fmt.Errorf("invalid pack name %q", name)
	}
	if err := w.f.Sync(); err != nil {
		w.Abort()
		return fmt.Errorf("sync pack %s: %w", name, err)
	}
	if err := w.f.Close(); err != nil {
		w.Abort()
		return err
	}
	final := w.s.path(name)
	sub := filepath.Dir(final)
	if err := os.MkdirAll(sub, 0o755); err != nil {
		w.Abort()
		return err
	}
	if err := os.Rename(w.f.Name(), final); err != nil {
		w.Abort()
		return err
	}
	w.done = true
	// The new subdirectory entry (if any) and the renamed file entry must
	// both reach the disk.
	if err := durable.SyncDir(w.s.dir); err != nil {
		return err
	}
	return durable.SyncDir(sub)
}

func (w *localPackWriter) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.f.Close()
	os.Remove(w.f.Name())
}

type localPackReader struct {
	*os.File
	size int64
}

func (r *localPackReader) Size() int64 { return r.size }

// Open implements PackStore.
func (s *LocalPackStore) Open(name string) (PackReader, error) {
	if !validPackName(name) {
		return nil, fmt.Errorf("invalid pack name %q", name)
	}
	f, err := os.Open(s.path(name))
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &localPackReader{File: f, size: st.Size()}, nil
}

// List implements PackStore. Files that do not look like packs are skipped.
func (s *LocalPackStore) List(fn func(name string, size int64) error) error {
	subs, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	var names []string
	sizes := map[string]int64{}
	for _, sub := range subs {
		if !sub.IsDir() || len(sub.Name()) != 2 {
			continue
		}
		files, err := os.ReadDir(filepath.Join(s.dir, sub.Name()))
		if err != nil {
			return err
		}
		for _, f := range files {
			name, ok := strings.CutSuffix(f.Name(), ".pack")
			if !ok || !validPackName(name) || name[:2] != sub.Name() {
				continue
			}
			info, err := f.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return err
			}
			names = append(names, name)
			sizes[name] = info.Size()
		}
	}
	sort.Strings(names)
	for _, n := range names {
		if err := fn(n, sizes[n]); err != nil {
			return err
		}
	}
	return nil
}

// Remove implements PackStore.
func (s *LocalPackStore) Remove(name string) error {
	if !validPackName(name) {
		return fmt.Errorf("invalid pack name %q", name)
	}
	return os.Remove(s.path(name))
}

func validPackName(name string) bool {
	if len(name) != 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
