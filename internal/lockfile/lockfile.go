// Package lockfile takes an exclusive flock on a lock file and records
// the holder in it (pid, host, command, start time), so that whoever comes
// second can say who is in the way. It is the one writer of that record:
// the repository's writer lock (package repo) and a tree clone's lock
// (package treeclone) both use it.
//
// The flock, not the record, is the lock: the kernel drops it when the
// holder dies, so a killed holder's lock is taken over at once, and a
// record left behind by a dead holder means nothing.
package lockfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Holder describes the process holding a lock. It is stored in the lock
// file as JSON.
type Holder struct {
	PID     int       `json:"pid"`
	Host    string    `json:"host"`
	Command string    `json:"command"`
	Started time.Time `json:"started"`
}

// Me describes this process doing command ("import debian:12", "mounted
// at /mnt/x"), started now (to the second, UTC).
func Me(command string) Holder {
	host, _ := os.Hostname()
	return Holder{PID: os.Getpid(), Host: host, Command: strings.TrimSpace(command), Started: time.Now().UTC().Truncate(time.Second)}
}

func (h Holder) String() string {
	return fmt.Sprintf("pid %d (%s) on host %s since %s", h.PID, h.Command, h.Host, h.Started.Format(time.RFC3339))
}

// Read returns the holder recorded in the lock file at path. false means
// none: no file, an empty one (released), or one that is not a record.
// Whether the lock is still held is for the flock to say.
func Read(path string) (Holder, bool) {
	data, err := os.ReadFile(path)
	if err != nil || len(data) == 0 {
		return Holder{}, false
	}
	var h Holder
	if json.Unmarshal(data, &h) != nil || h.PID == 0 {
		return Holder{}, false
	}
	return h, true
}

// ErrHeld is wrapped by TryLock's error when another process holds the
// lock.
var ErrHeld = errors.New("lock held by another process")

// HeldError is TryLock's error when another process holds the lock: it
// carries that process's record, if it wrote one. It matches ErrHeld.
type HeldError struct {
	Path   string
	Holder Holder
	Known  bool // Holder was read from the file
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("%s is held by %s", e.Path, e.Who())
}

// Who names the holder: its record, or "another process".
func (e *HeldError) Who() string {
	if e.Known {
		return e.Holder.String()
	}
	return "another process"
}

func (e *HeldError) Unwrap() error { return ErrHeld }

// Lock is a lock held by this process.
type Lock struct {
	f *os.File
	// Previous is the record a holder that died left in the file (its
	// flock went with it), if any.
	Previous *Holder
}

// TryLock opens path (creating it with perm), takes an exclusive flock
// without waiting and records h in the file. If another process holds the
// lock, the error is a *HeldError.
func TryLock(path string, perm os.FileMode, h Holder) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, perm)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			held := &HeldError{Path: path}
			held.Holder, held.Known = Read(path)
			return nil, held
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	l := &Lock{f: f}
	if prev, ok := Read(path); ok {
		l.Previous = &prev
	}
	data, _ := json.Marshal(h) // plain fields: cannot fail
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt(data, 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("write lock holder into %s: %w", path, err)
	}
	return l, nil
}

// Release empties the record (so nobody reads it as a live holder) and
// drops the lock.
func (l *Lock) Release() error {
	l.f.Truncate(0)
	return l.f.Close()
}
