// Package durable writes small files so that a crash leaves either the old
// or the new content, never a mix: the repository's config, clone records.
// It exists because four packages had grown their own copy of the same
// dozen lines.
package durable

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
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

// partialPrefix starts the name of an output being built for name.
func partialPrefix(name string) string { return "." + filepath.Base(name) + ".mis-partial-" }

// CreateOutput creates a temporary file of size bytes (sparse) in name's
// directory. It holds an flock on it until Commit or Abort, so the
// leftovers of a killed build of the same name (nobody holds their lock)
// are told from a build running now, and removed first.
func CreateOutput(name string, size int64) (*Output, error) {
	RemoveAbandoned(name)
	f, err := os.CreateTemp(filepath.Dir(name), partialPrefix(name))
	if err != nil {
		return nil, err
	}
	o := &Output{File: f, name: name}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		o.Abort()
		return nil, err
	}
	if err := f.Truncate(size); err != nil {
		o.Abort()
		return nil, err
	}
	return o, nil
}

// RemoveAbandoned removes the partial outputs for name that no running
// build holds: what a killed export left behind.
func RemoveAbandoned(name string) {
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(name), globEscape(partialPrefix(name))+"*"))
	for _, p := range matches {
		f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			os.Remove(p)
		}
		f.Close()
	}
}

// globEscape quotes the pattern characters of a file name.
func globEscape(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', '\\':
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return string(b)
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
