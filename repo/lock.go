package repo

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// lockInfo is written into the lock file by the process holding it, so
// that others can say who holds the repository.
type lockInfo struct {
	PID     int       `json:"pid"`
	Host    string    `json:"host"`
	Command string    `json:"command"`
	Started time.Time `json:"started"`
}

func (l lockInfo) String() string {
	return fmt.Sprintf("pid %d (%s) on host %s since %s", l.PID, l.Command, l.Host, l.Started.Format(time.RFC3339))
}

// writerLock is the repository writer lock: an flock on DIR/lock. The
// kernel drops it when the holder dies, so a lock left by a killed
// process needs no manual cleanup.
type writerLock struct {
	f *os.File
}

// ErrLocked is wrapped by OpenWriter's error when another process holds
// the writer lock.
var ErrLocked = errors.New("writer lock held")

func (r *Repo) lockPath() string { return filepath.Join(r.dir, lockName) }

func readLockInfo(path string) (lockInfo, bool) {
	data, err := os.ReadFile(path)
	if err != nil || len(data) == 0 {
		return lockInfo{}, false
	}
	var li lockInfo
	if json.Unmarshal(data, &li) != nil || li.PID == 0 {
		return lockInfo{}, false
	}
	return li, true
}

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
	if li, ok := readLockInfo(r.lockPath()); ok {
		return li.String()
	}
	return "another process"
}

func (r *Repo) acquireWriterLock(holder string) (*writerLock, error) {
	path := r.lockPath()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, FileMode)
	if err != nil {
		return nil, fmt.Errorf("open writer lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			if li, ok := readLockInfo(path); ok {
				return nil, fmt.Errorf("repository %s is locked by %s: %w", r.dir, li, ErrLocked)
			}
			return nil, fmt.Errorf("repository %s is locked by another process: %w", r.dir, ErrLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if stale, ok := readLockInfo(path); ok {
		debugf("taking over writer lock of %s left by %s (no longer running)", r.dir, stale)
	}
	host, _ := os.Hostname()
	info := lockInfo{PID: os.Getpid(), Host: host, Command: strings.TrimSpace(holder), Started: time.Now().UTC().Truncate(time.Second)}
	data, _ := json.Marshal(info)
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt(data, 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("write writer lock: %w", err)
	}
	return &writerLock{f: f}, nil
}

func (l *writerLock) release() error {
	// Empty the file first so nobody reads our details as a live holder.
	l.f.Truncate(0)
	return l.f.Close()
}
