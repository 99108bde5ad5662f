package mountfs

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// MountInfo is one line of /proc/self/mountinfo.
type MountInfo struct {
	Dir    string // mount point
	FSType string // e.g. "fuse.mis"
	Source string // e.g. "mis:debian:12"
	Major  int    // st_dev of the mount; for FUSE, Minor names the
	Minor  int    // connection in /sys/fs/fuse/connections
}

// FindMount returns the mount whose mount point is dir (the last one, if
// several are stacked).
func FindMount(dir string) (MountInfo, bool, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return MountInfo{}, false, err
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return MountInfo{}, false, err
	}
	defer f.Close()
	var found MountInfo
	ok := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		mi, err := parseMountInfo(sc.Text())
		if err != nil {
			return MountInfo{}, false, err
		}
		if mi.Dir == abs {
			found, ok = mi, true
		}
	}
	return found, ok, sc.Err()
}

// parseMountInfo parses "id parent major:minor root mountpoint opts
// [optional...] - fstype source superopts".
func parseMountInfo(line string) (MountInfo, error) {
	fields := strings.Fields(line)
	sep := -1
	for i, f := range fields {
		if f == "-" && i >= 6 {
			sep = i
			break
		}
	}
	if sep < 0 || sep+2 >= len(fields) {
		return MountInfo{}, fmt.Errorf("/proc/self/mountinfo: cannot parse line %q", line)
	}
	var mi MountInfo
	maj, min, _ := strings.Cut(fields[2], ":")
	mi.Major, _ = strconv.Atoi(maj)
	mi.Minor, _ = strconv.Atoi(min)
	mi.Dir = unescapeMountField(fields[4])
	mi.FSType = fields[sep+1]
	mi.Source = unescapeMountField(fields[sep+2])
	return mi, nil
}

// unescapeMountField undoes the kernel's octal escapes (\040 for space...).
func unescapeMountField(s string) string {
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

// ErrNotMounted is returned by Unmount for a directory that is no mount point.
var ErrNotMounted = errors.New("not a mount point")

// Unmount unmounts the FUSE mount at dir. It works whether or not the
// serving process is alive (a dead server's connection is already
// aborted). When the mount is busy it fails, unless lazy is set: then the
// mount is detached now and goes away when the last user leaves. It
// returns whether the mount was detached lazily.
func Unmount(dir string, lazy bool) (detached bool, err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false, err
	}
	mi, ok, err := FindMount(abs)
	if err != nil {
		return false, err
	}
	if !ok {
		return false, fmt.Errorf("%s: %w", abs, ErrNotMounted)
	}
	if !strings.HasPrefix(mi.FSType, "fuse") {
		return false, fmt.Errorf("%s is a %s mount, not a mis mount", abs, mi.FSType)
	}
	if os.Geteuid() != 0 {
		return fusermountUnmount(abs, lazy)
	}
	err = syscall.Unmount(abs, 0)
	if err == nil {
		return false, nil
	}
	if errors.Is(err, syscall.EBUSY) && !lazy {
		return false, fmt.Errorf("unmount %s: %w (a process uses it: close it, or use --lazy to detach now)", abs, err)
	}
	// Busy and lazy, or a broken connection the plain unmount refused:
	// detach, which always succeeds for a mount point we may unmount.
	if derr := syscall.Unmount(abs, syscall.MNT_DETACH); derr != nil {
		return false, fmt.Errorf("unmount %s: %v; detach: %w", abs, err, derr)
	}
	return true, nil
}

func fusermountUnmount(dir string, lazy bool) (bool, error) {
	args := []string{"-u"}
	if lazy {
		args = append(args, "-z")
	}
	args = append(args, dir)
	var lastErr error
	for _, bin := range []string{"fusermount3", "fusermount"} {
		if _, err := exec.LookPath(bin); err != nil {
			continue
		}
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err == nil {
			return lazy, nil
		}
		lastErr = fmt.Errorf("%s %s: %v: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("unmount %s: not root and no fusermount found", dir)
	}
	return false, lastErr
}

// FindMountBySource returns the mount whose source (first column of
// /proc/mounts, the FsName) is source, e.g. "mis:myclone".
func FindMountBySource(source string) (MountInfo, bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return MountInfo{}, false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		mi, err := parseMountInfo(sc.Text())
		if err != nil {
			return MountInfo{}, false, err
		}
		if mi.Source == source && strings.HasPrefix(mi.FSType, "fuse") {
			return mi, true, nil
		}
	}
	return MountInfo{}, false, sc.Err()
}
