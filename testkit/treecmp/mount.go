package treecmp

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// LoopMount mounts the filesystem at [off, off+size) of image read-only
// (noatime, so reads do not change what is compared) and unmounts it when
// the test ends. fstype "" lets mount probe.
func LoopMount(tb testing.TB, image string, off, size int64, fstype string) string {
	tb.Helper()
	dir := tb.TempDir()
	opts := fmt.Sprintf("loop,ro,noatime,offset=%d,sizelimit=%d", off, size)
	args := []string{"-o", opts}
	if fstype != "" {
		args = append(args, "-t", fstype)
	}
	args = append(args, image, dir)
	if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
		tb.Fatalf("mount %s at offset %d: %v: %s", image, off, err, out)
	}
	tb.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			tb.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// RequireRoot skips tb unless running as root (loop mounts, mknod, chown).
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root for loop mounts")
	}
}

// E2fsck runs `e2fsck -fn` on the filesystem at [off, off+size) of image
// and fails tb with its output unless it reports a clean filesystem.
func E2fsck(tb testing.TB, image string, off, size int64) {
	tb.Helper()
	target := image
	if off != 0 {
		// e2fsck has no offset option: check a copy of the partition.
		part := tb.TempDir() + "/part.img"
		cmd := exec.Command("dd", "if="+image, "of="+part, "bs=64K", "iflag=skip_bytes,count_bytes",
			fmt.Sprintf("skip=%d", off), fmt.Sprintf("count=%d", size), "conv=sparse", "status=none")
		if out, err := cmd.CombinedOutput(); err != nil {
			tb.Fatalf("extract partition: %v: %s", err, out)
		}
		target = part
	}
	out, err := exec.Command("e2fsck", "-fn", target).CombinedOutput()
	if err != nil {
		tb.Fatalf("e2fsck -fn %s (offset %d): %v\n%s", image, off, err, strings.TrimSpace(string(out)))
	}
}
