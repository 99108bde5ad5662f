package treeclone

import (
	"errors"
	"fmt"
	"strings"

	"mis/internal/lockfile"
	"mis/internal/mountinfo"
)

// lockClone takes the clone's lock without waiting. The lock is what
// "mounted" means: a mount holds it for its whole life (the kernel drops it
// when the serving process dies), and commit, remove and rebase take it for
// their duration, so none of them runs on a mounted clone. The lock file
// names the holder (purpose, pid, host, start) for whoever comes second.
func lockClone(d Dirs, purpose string) (unlock func(), err error) {
	l, err := lockfile.TryLock(d.Lock, 0o600, lockfile.Me(purpose))
	var held *lockfile.HeldError
	switch {
	case errors.As(err, &held):
		return nil, fmt.Errorf("tree clone at %s is busy (%s): %w", d.Root, held.Who(), ErrMounted)
	case err != nil:
		return nil, err
	}
	return func() { l.Release() }, nil
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
