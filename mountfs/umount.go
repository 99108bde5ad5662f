package mountfs

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"

	"mis/internal/mountinfo"
)

// MountInfo is one line of /proc/self/mountinfo: Dir (mount point),
// FSType (e.g. "fuse.mis"), Source (e.g. "mis:debian:12"), Major and Minor
// (st_dev of the mount; for FUSE, Minor names the connection in
// /sys/fs/fuse/connections)...
type MountInfo = mountinfo.Mount

// FindMount returns the mount whose mount point is dir (the last one, if
// several are stacked).
func FindMount(dir string) (MountInfo, bool, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return MountInfo{}, false, err
	}
	ms, err := mountinfo.Read()
	if err != nil {
		return MountInfo{}, false, err
	}
	var found MountInfo
	ok := false
	for _, mi := range ms {
		if mi.Dir == abs {
			found, ok = mi, true
		}
	}
	return found, ok, nil
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
	ms, err := mountinfo.Read()
	if err != nil {
		return MountInfo{}, false, err
	}
	for _, mi := range ms {
		if mi.Source == source && strings.HasPrefix(mi.FSType, "fuse") {
			return mi, true, nil
		}
	}
	return MountInfo{}, false, nil
}

// ServeUntilSignal serves srv until the mount at dir goes away. The first
// SIGINT or SIGTERM, or the end of ctx (a signal the caller's own handler
// took before this one was installed), unmounts; if the mount is busy,
// another signal detaches it lazily.
func ServeUntilSignal(ctx context.Context, srv *fuse.Server, dir string, logger *log.Logger) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	served := make(chan struct{})
	defer close(served)
	go func() {
		select {
		case <-sigs:
		case <-ctx.Done():
		case <-served:
			return
		}
		for {
			err := srv.Unmount()
			if err == nil {
				return
			}
			logger.Printf("cannot unmount %s: %v; close what uses it, or signal again to detach it lazily", dir, err)
			<-sigs
			if _, err := Unmount(dir, true); err == nil {
				return
			}
		}
	}()
	srv.Wait()
}
