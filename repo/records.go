package repo

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"mis/internal/durable"
)

// Record files are a second, durable copy of caller records that must
// survive the loss of the metadata database: one small file per record,
// REPO/<kind>/<name>. layer keeps every version record there
// (REPO/versions/<id>.json), so that verify --repair can restore versions
// when Badger is damaged; the chunk index needs no copy (it is rebuilt
// from the packs). The metadata database stays the authority: callers
// write a record file after the commit that makes the record visible and
// remove it before the commit that deletes the record, so a crash leaves
// at worst a record without its file (restored by the next repair), never
// a file for a record that does not exist.
//
// Only the writer-lock holder writes record files (Writer methods).

// recordsDirs are the kinds of record files.
var recordsDirs = []string{"versions"}

func (r *Repo) recordPath(kind, name string) (string, error) {
	ok := false
	for _, k := range recordsDirs {
		ok = ok || k == kind
	}
	if !ok {
		return "", fmt.Errorf("unknown record kind %q", kind)
	}
	if name == "" || strings.ContainsAny(name, "/\x00") || name[0] == '.' {
		return "", fmt.Errorf("invalid record name %q", name)
	}
	return filepath.Join(r.dir, kind, name), nil
}

// PutRecordFile writes record file kind/name durably (temporary file,
// fsync, rename, fsync of the directory), replacing any previous content.
func (w *Writer) PutRecordFile(kind, name string, data []byte) error {
	if err := w.checkOpenUnlocked(); err != nil {
		return err
	}
	path, err := w.r.recordPath(kind, name)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(dir, DirMode); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if err := durable.SyncDir(w.r.dir); err != nil {
			return err
		}
	}
	return durable.WriteFile(path, data, FileMode)
}

// RemoveRecordFile removes record file kind/name; a missing one is no error.
func (w *Writer) RemoveRecordFile(kind, name string) error {
	if err := w.checkOpenUnlocked(); err != nil {
		return err
	}
	path, err := w.r.recordPath(kind, name)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	return durable.SyncDir(filepath.Dir(path))
}

// RecordFiles calls fn for every record file of kind, in name order.
// Leftover temporary files of interrupted writes are skipped.
func (r *Repo) RecordFiles(kind string, fn func(name string, data []byte) error) error {
	path, err := r.recordPath(kind, "x")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		if e.Type().IsRegular() && !strings.HasSuffix(e.Name(), ".tmp") && e.Name()[0] != '.' {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(dir, n))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := fn(n, data); err != nil {
			return err
		}
	}
	return nil
}

func (w *Writer) checkOpenUnlocked() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.checkOpen()
}
