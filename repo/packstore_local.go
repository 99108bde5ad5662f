package repo

import (
	"bytes"
	"context"
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

const tmpDirName = "tmp"

// LocalPackStore keeps packs in a directory as <2 hex>/<64 hex>.pack,
// with packs being written in tmp/. It is the default PackStore, rooted
// at the repository's packs/.
type LocalPackStore struct {
	dir string
}

var _ PackStore = (*LocalPackStore)(nil)

// NewLocalPackStore returns a store rooted at dir, which must exist.
func NewLocalPackStore(dir string) *LocalPackStore { return &LocalPackStore{dir: dir} }

func (s *LocalPackStore) path(name string) string {
	return filepath.Join(s.dir, name[:2], name+".pack")
}

// Put implements PackStore: the pack is written to tmp/, synced, renamed
// to its name and the directories synced.
func (s *LocalPackStore) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if err := checkPackName(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	tmpDir := filepath.Join(s.dir, tmpDirName)
	if err := os.MkdirAll(tmpDir, DirMode); err != nil {
		return err
	}
	f, err := os.CreateTemp(tmpDir, "pack-*")
	if err != nil {
		return err
	}
	if err := writePackFile(ctx, f, r, size); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("write pack %s: %w", name, err)
	}
	final := s.path(name)
	sub := filepath.Dir(final)
	if err := os.MkdirAll(sub, DirMode); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), final); err != nil {
		os.Remove(f.Name())
		return err
	}
	// The new subdirectory entry (if any) and the renamed file entry must
	// both reach the disk.
	if err := durable.SyncDir(s.dir); err != nil {
		return err
	}
	return durable.SyncDir(sub)
}

// writePackFile copies size bytes of r into f, syncs and closes it.
func writePackFile(ctx context.Context, f *os.File, r io.Reader, size int64) error {
	if br, ok := r.(*bytes.Reader); ok && int64(br.Len()) == size {
		// One write for an in-memory pack (the writer's case).
		if _, err := br.WriteTo(f); err != nil {
			return err
		}
	} else {
		buf := make([]byte, min(size, 1<<20))
		n, err := io.CopyBuffer(f, io.LimitReader(ctxReader{ctx, r}, size), buf)
		if err != nil {
			return err
		}
		if n != size {
			return fmt.Errorf("got %d of %d bytes: %w", n, size, io.ErrUnexpectedEOF)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

// ctxReader fails reads once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// RemoveIncomplete implements PackStore: it empties tmp/.
func (s *LocalPackStore) RemoveIncomplete(ctx context.Context) (removed int, err error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	tmpDir := filepath.Join(s.dir, tmpDirName)
	entries, err := os.ReadDir(tmpDir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		if err := os.Remove(filepath.Join(tmpDir, e.Name())); err != nil {
			return removed, err
		}
		removed++
	}
	return removed, nil
}

type localPackReader struct {
	f    *os.File
	size int64
}

func (r *localPackReader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return r.f.ReadAt(p, off)
}

func (r *localPackReader) Size() int64  { return r.size }
func (r *localPackReader) Close() error { return r.f.Close() }

// Open implements PackStore. The open file stays readable after the pack
// is removed.
func (s *LocalPackStore) Open(ctx context.Context, name string) (PackReader, error) {
	if err := checkPackName(name); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
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
	return &localPackReader{f: f, size: st.Size()}, nil
}

// Stat implements PackStore.
func (s *LocalPackStore) Stat(ctx context.Context, name string) (int64, error) {
	if err := checkPackName(name); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	st, err := os.Stat(s.path(name))
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// List implements PackStore. Files that do not look like packs are skipped.
func (s *LocalPackStore) List(ctx context.Context, fn func(name string, size int64) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
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
		if err := ctx.Err(); err != nil {
			return err
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
func (s *LocalPackStore) Remove(ctx context.Context, name string) error {
	if err := checkPackName(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	err := os.Remove(s.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
