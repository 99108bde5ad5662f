package treeclone

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"mis/internal/mountinfo"
)

// lockClone takes the clone's lock without waiting. The lock is what
// "mounted" means: a mount holds it for its whole life (the kernel drops it
// when the serving process dies), and commit, remove and rebase take it for
// their duration, so none of them runs on a mounted clone.
func lockClone(d Dirs, purpose string) (unlock func(), err error) {
	f, err := os.OpenFile(d.Lock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(d.Lock)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			h := strings.TrimSpace(string(holder))
			if h == "" {
				h = "another process"
			}
			return nil, fmt.Errorf("tree clone at %s is busy (%s): %w", d.Root, h, ErrMounted)
		}
		return nil, fmt.Errorf("lock %s: %w", d.Lock, err)
	}
	// Name the holder for the error message of whoever comes second.
	f.Truncate(0)
	fmt.Fprintf(f, "%s by pid %d since %s\n", purpose, os.Getpid(), time.Now().UTC().Format(time.RFC3339))
	return func() {
		f.Truncate(0)
		f.Close()
	}, nil
}

// checkNoMounts refuses when anything is still mounted on the clone's
// directories or an overlay still uses its upper: a mount left behind by a
// serving process that died (its lock is gone, its overlays are not).
func checkNoMounts(d Dirs) error {
	ms, err := mountinfo.Read()
	if err != nil {
		return err
	}
	for _, m := range ms {
		if m.Dir == d.Root || strings.HasPrefix(m.Dir, d.Root+"/") {
			return fmt.Errorf("%s is still mounted (unmount it first): %w", m.Dir, ErrMounted)
		}
		if m.FSType == "overlay" {
			if up, _ := mountinfo.Option(m.SuperOptions, "upperdir"); up == d.Upper || strings.HasPrefix(up, d.Upper+"/") {
				return fmt.Errorf("an overlay at %s still uses %s (unmount it first): %w", m.Dir, up, ErrMounted)
			}
		}
	}
	return nil
}
