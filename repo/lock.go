package repo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"mis/internal/lockfile"
)

// writerLock is the repository writer lock: an flock on DIR/lock, which
// names its holder (pid, host, command, start time; see package lockfile)
// so that others can say who holds the repository. The kernel drops it
// when the holder dies, so a lock left by a killed process needs no manual
// cleanup.
type writerLock struct {
	l *lockfile.Lock
}

// ErrLocked is wrapped by OpenWriter's error when another process holds
// the writer lock.
var ErrLocked = errors.New("writer lock held")

func (r *Repo) lockPath() string { return filepath.Join(r.dir, lockName) }

// lockHolderDescription names the current writer for "busy" messages.
func (r *Repo) lockHolderDescription() string {
	f, err := os.Open(r.lockPath())
	if err == nil {
		defer f.Close()
		// If we can take the lock, nobody holds it and the file is stale.
		if unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB) == nil {
			unix.Flock(int(f.Fd()), unix.LOCK_UN)
			return "another reader or writer"
		}
	}
	if h, ok := lockfile.Read(r.lockPath()); ok {
		return h.String()
	}
	return "another process"
}

func (r *Repo) acquireWriterLock(holder string) (*writerLock, error) {
	l, err := lockfile.TryLock(r.lockPath(), FileMode, lockfile.Me(holder))
	var held *lockfile.HeldError
	switch {
	case errors.As(err, &held):
		return nil, fmt.Errorf("repository %s is locked by %s: %w", r.dir, held.Who(), ErrLocked)
	case err != nil:
		return nil, fmt.Errorf("writer lock: %w", err)
	}
	if l.Previous != nil {
		debugf("taking over writer lock of %s left by %s (no longer running)", r.dir, l.Previous)
	}
	return &writerLock{l: l}, nil
}

func (l *writerLock) release() error {
	return l.l.Release()
}
