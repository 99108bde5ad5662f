package ext4

import (
	"errors"
	"fmt"
)

// Sentinel errors; test with errors.Is. Every error returned by this package
// is an *Error wrapping one of these (or an I/O error) with the location.
var (
	ErrNotExt       = errors.New("not an ext2/3/4 filesystem")
	ErrCorrupt      = errors.New("corrupt filesystem")
	ErrUnsupported  = errors.New("unsupported feature")
	ErrDirtyJournal = errors.New("filesystem has a dirty journal (needs recovery); run e2fsck or mount/unmount it cleanly before import")
)

// Error says what operation failed, on which inode and block.
// Ino and Block are 0 when they do not apply.
type Error struct {
	Op    string
	Ino   uint32
	Block uint64
	Err   error
}

func (e *Error) Error() string {
	s := "ext4: " + e.Op
	if e.Ino != 0 {
		s += fmt.Sprintf(": inode %d", e.Ino)
	}
	if e.Block != 0 {
		s += fmt.Sprintf(": block %d", e.Block)
	}
	return s + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// corrupt builds an *Error wrapping ErrCorrupt with a formatted detail.
func corrupt(op string, ino uint32, block uint64, format string, args ...any) error {
	return &Error{Op: op, Ino: ino, Block: block, Err: fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)}
}

func wrapf(err error, format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{err}, args...)...)
}
