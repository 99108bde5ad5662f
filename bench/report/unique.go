package main

import (
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/zeebo/blake3"
)

// uniqueFiles hashes every non-empty regular file under dirs and copies
// the ones whose content is not in stage yet to stage/<hash>. Hashing and
// copying are one read: the file is copied to a temporary name while
// hashed, then renamed or dropped.
func uniqueFiles(stage string, dirs []string) (seen, added int, err error) {
	if err := os.MkdirAll(stage, 0o755); err != nil {
		return 0, 0, err
	}
	tmp := filepath.Join(stage, ".partial")
	buf := make([]byte, 1<<20)
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return fmt.Errorf("walk %s: %w", path, err)
			}
			if !d.Type().IsRegular() {
				return nil
			}
			seen++
			isNew, err := copyIfNew(path, stage, tmp, buf)
			if isNew {
				added++
			}
			return err
		})
		if err != nil {
			return seen, added, err
		}
	}
	return seen, added, nil
}

func copyIfNew(path, stage, tmp string, buf []byte) (bool, error) {
	in, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer in.Close()
	out, err := os.Create(tmp)
	if err != nil {
		return false, err
	}
	h := blake3.New()
	n, err := io.CopyBuffer(io.MultiWriter(h, out), in, buf)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return false, fmt.Errorf("%s: %w", path, err)
	}
	dst := filepath.Join(stage, hex.EncodeToString(h.Sum(nil)))
	if _, err := os.Lstat(dst); err == nil || n == 0 {
		return false, os.Remove(tmp) // known content, or empty (nothing to store)
	}
	return true, os.Rename(tmp, dst)
}
