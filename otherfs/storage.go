package otherfs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/diskfs/go-diskfs/backend"
)

// sectionStorage lets go-diskfs read a filesystem from any io.ReaderAt: the
// filesystem starts at offset 0 of the section, so go-diskfs never sees the
// rest of the disk and its start arithmetic is not exercised.
type sectionStorage struct {
	*io.SectionReader
}

var _ backend.Storage = sectionStorage{}

var errReadOnly = errors.New("otherfs: read-only")

func (s sectionStorage) Stat() (fs.FileInfo, error) { return sectionInfo{size: s.Size()}, nil }
func (s sectionStorage) Close() error               { return nil }
func (s sectionStorage) Sys() (*os.File, error)     { return nil, errReadOnly }
func (s sectionStorage) Path() string               { return "" }
func (s sectionStorage) Writable() (backend.WritableFile, error) {
	return nil, errReadOnly
}

type sectionInfo struct{ size int64 }

func (i sectionInfo) Name() string       { return "section" }
func (i sectionInfo) Size() int64        { return i.size }
func (i sectionInfo) Mode() fs.FileMode  { return 0o444 }
func (i sectionInfo) ModTime() time.Time { return time.Time{} }
func (i sectionInfo) IsDir() bool        { return false }
func (i sectionInfo) Sys() any           { return nil }
