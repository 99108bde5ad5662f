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
