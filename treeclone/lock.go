package treeclone

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
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

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	dir, fsType, source, superOpts string
}

func readMounts() ([]mountEntry, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mountEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, x := range fields {
			if x == "-" && i >= 6 {
				sep = i
				break
			}
		}
		if sep < 0 || sep+3 >= len(fields) {
			continue
		}
		out = append(out, mountEntry{
			dir:       unescapeMount(fields[4]),
			fsType:    fields[sep+1],
			source:    unescapeMount(fields[sep+2]),
			superOpts: unescapeMount(fields[sep+3]),
		})
	}
	return out, sc.Err()
}

// unescapeMount undoes the kernel's octal escapes (\040 for a space...).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// overlayOpt returns the value of key (e.g. "upperdir") in an overlay's
// super options. Overlay escapes commas in paths with a backslash.
func overlayOpt(superOpts, key string) string {
	for _, o := range splitOpts(superOpts) {
		if v, ok := strings.CutPrefix(o, key+"="); ok {
			return v
		}
	}
	return ""
}

func splitOpts(s string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s):
			cur.WriteByte(s[i+1])
			i++
		case s[i] == ',':
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(s[i])
		}
	}
	return append(out, cur.String())
}

// checkNoMounts refuses when anything is still mounted on the clone's
// directories or an overlay still uses its upper: a mount left behind by a
// serving process that died (its lock is gone, its overlays are not).
func checkNoMounts(d Dirs) error {
	ms, err := readMounts()
	if err != nil {
		return err
	}
	for _, m := range ms {
		if m.dir == d.Root || strings.HasPrefix(m.dir, d.Root+"/") {
			return fmt.Errorf("%s is still mounted (unmount it first): %w", m.dir, ErrMounted)
		}
		if m.fsType == "overlay" {
			if up := overlayOpt(m.superOpts, "upperdir"); up == d.Upper || strings.HasPrefix(up, d.Upper+"/") {
				return fmt.Errorf("an overlay at %s still uses %s (unmount it first): %w", m.dir, up, ErrMounted)
			}
		}
	}
	return nil
}
