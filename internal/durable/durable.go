// Package durable writes small files so that a crash leaves either the old
// or the new content, never a mix: the repository's config, clone records.
// It exists because four packages had grown their own copy of the same
// dozen lines.
package durable

import (
	"os"
	"path/filepath"
)

// WriteFile replaces name with data: temp file beside it, fsync, rename,
// fsync of the directory (without which the rename itself may be lost).
func WriteFile(name string, data []byte, perm os.FileMode) error {
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, name); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(name))
}

// SyncDir makes the entries of dir (creations, renames) durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Output is a file being built beside its final name: readers never see a
// partial file under that name, and an abandoned one is removed.
type Output struct {
	*os.File
	name string
	done bool
}

// CreateOutput creates a temporary file of size bytes (sparse) in name's
// directory.
func CreateOutput(name string, size int64) (*Output, error) {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".mis-partial-")
	if err != nil {
		return nil, err
	}
	o := &Output{File: f, name: name}
	if err := f.Truncate(size); err != nil {
		o.Abort()
		return nil, err
	}
	return o, nil
}

// Commit syncs the file, renames it to its final name and syncs the
// directory.
func (o *Output) Commit() error {
	if err := o.Sync(); err != nil {
		return err
	}
	if err := o.Close(); err != nil {
		return err
	}
	if err := os.Rename(o.File.Name(), o.name); err != nil {
		return err
	}
	o.done = true
	return SyncDir(filepath.Dir(o.name))
}

// Abort removes the file unless Commit renamed it; deferring it is safe.
func (o *Output) Abort() {
	if o.done {
		return
	}
	o.Close()
	os.Remove(o.File.Name())
}
