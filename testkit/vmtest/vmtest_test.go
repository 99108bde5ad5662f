package vmtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"mis/fixtures"
)

func needQemu(t *testing.T) {
	t.Helper()
	if err := Available(); err != nil {
		t.Skip(err)
	}
}

// debianImage is the cached Debian fixture and its kernel, or a skip.
func debianImage(t *testing.T, kind string) (img, kernel, initrd string) {
	t.Helper()
	if os.Getenv("MIS_FIXTURES_DEBIAN") != "1" {
		t.Skip("slow and needs the Debian mirror: set MIS_FIXTURES_DEBIAN=1")
	}
	needQemu(t)
	img = fixtures.Path(t, kind)
	kernel, initrd, err := KernelFromImage(img, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return img, kernel, initrd
}

// logWriter sends the console to t.Log line by line (only shown on failure or -v).
type logWriter struct {
	t    *testing.T
	mu   sync.Mutex
	line []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.line = append(w.line, p...)
	for {
		i := bytes.IndexByte(w.line, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.t.Log(strings.TrimRight(string(w.line[:i]), "\r"))
		w.line = w.line[i+1:]
	}
}

func sparseCopy(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "disk.raw")
	if out, err := exec.Command("cp", "--sparse=always", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	return dst
}

// TestBootWritable is the path a clone takes: the guest writes a file on a
// writable disk and shuts down; the file is then on the disk and the root
// filesystem is clean. The check runs as PID 1; with MIS_VMTEST_SYSTEMD=1
// also as a unit of a full systemd boot (about 90 s more under TCG).
func TestBootWritable(t *testing.T) {
	img, kernel, initrd := debianImage(t, "debian")
	modes := []struct {
		name    string
		systemd bool
		pid1    string
	}{{"init", false, "mis-boot-check"}}
	if os.Getenv("MIS_VMTEST_SYSTEMD") == "1" {
		modes = append(modes, struct {
			name    string
			systemd bool
			pid1    string
		}{"systemd", true, "systemd"})
	}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			d := sparseCopy(t, img)
			content := "written-by-the-guest-" + mode.name
			k := Check{Write: "/root/from-guest.txt", Content: content, Systemd: mode.systemd}
			r, err := BootCheck(context.Background(), Config{Disk: d, Kernel: kernel, Initrd: initrd, Log: &logWriter{t: t}}, k)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Printf("vmtest: %s boot of debian: kernel %s, pid 1 %s, %.1fs from qemu start to power off\n", mode.name, r.Release, r.Init, r.Elapsed.Seconds())
			if !strings.HasPrefix(filepath.Base(kernel), "vmlinuz-"+r.Release) {
				t.Errorf("guest runs %s, extracted kernel is %s", r.Release, kernel)
			}
			if r.Init != mode.pid1 {
				t.Errorf("pid 1 is %q, want %q", r.Init, mode.pid1)
			}
			got, err := ReadGuestFile(d, 2, k.Write)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != content+"\n" {
				t.Errorf("guest file holds %q, want %q", got, content+"\n")
			}
			if err := FsckExt(d); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestBootReadOnly boots a cached fixture itself with snapshot=on: the guest
// still writes (to qemu's overlay), and the image must not change. It boots
// the last of the Debian history, so the history is shown to boot too.
func TestBootReadOnly(t *testing.T) {
	if os.Getenv("MIS_TEST_FULL") != "1" {
		t.Skip("boots the Debian history's last version (minutes to build): set MIS_TEST_FULL=1")
	}
	img, kernel, initrd := debianImage(t, "debian-v4")
	before, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	k := Check{Write: "/root/read-only-boot.txt", Content: "discarded"}
	r, err := BootCheck(context.Background(), Config{Disk: img, Kernel: kernel, Initrd: initrd, ReadOnly: true, Log: &logWriter{t: t}}, k)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("vmtest: read-only boot of debian-v4: %.1fs from qemu start to power off\n", r.Elapsed.Seconds())
	after, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	if !after.ModTime().Equal(before.ModTime()) || after.Size() != before.Size() {
		t.Errorf("fixture changed: %v %d -> %v %d", before.ModTime(), before.Size(), after.ModTime(), after.Size())
	}
	if _, err := ReadGuestFile(img, 2, k.Write); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("guest write reached the read-only disk: %v", err)
	}
}

// TestBootTimeout kills a boot that cannot finish in time and says so.
func TestBootTimeout(t *testing.T) {
	img, kernel, initrd := debianImage(t, "debian")
	start := time.Now()
	_, err := Boot(context.Background(), Config{Disk: img, Kernel: kernel, Initrd: initrd, ReadOnly: true, Timeout: 2 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "did not exit within 2s") {
		t.Fatalf("want a timeout error, got %v", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("timeout took %v to return", d)
	}
}

// TestBootNoMarker: a boot that never reaches the check (PID 1 exits at
// once, the kernel panics, panic=1 and -no-reboot end qemu) is reported as a
// missing marker, not as success. (A missing init= would not do: the
// initramfs falls back to /sbin/init, which runs the check.)
func TestBootNoMarker(t *testing.T) {
	img, kernel, initrd := debianImage(t, "debian")
	c := Config{Disk: img, Kernel: kernel, Initrd: initrd, ReadOnly: true, Append: "init=/bin/true"}
	// Systemd mode: the check's own init= would override ours.
	_, err := BootCheck(context.Background(), c, Check{Systemd: true})
	if err == nil || !strings.Contains(err.Error(), "without printing") {
		t.Fatalf("want a missing-marker error, got %v", err)
	}
}

func TestBootBadInput(t *testing.T) {
	needQemu(t)
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk")
	if err := os.WriteFile(junk, []byte("not a kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := Boot(ctx, Config{Disk: filepath.Join(dir, "missing.raw"), Kernel: junk, Initrd: junk}); err == nil || !strings.Contains(err.Error(), "disk") {
		t.Errorf("missing disk: %v", err)
	}
	// qemu itself refuses a kernel it cannot load: exit status and its message come back.
	_, err := Boot(ctx, Config{Disk: junk, Kernel: junk, Initrd: junk, Timeout: time.Minute, Log: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "exit status") {
		t.Errorf("junk kernel: %v", err)
	}
	if _, err := (Check{Write: "/root/a b", Content: "x"}).Append(); err == nil {
		t.Error("a guest path with a space was accepted")
	}
	if _, err := (Check{Write: "/root/a", Content: "two words"}).Append(); err == nil {
		t.Error("content with a space was accepted")
	}
	if _, _, err := KernelFromImage(junk, dir); err == nil {
		t.Error("KernelFromImage of a non-disk succeeded")
	}
}

// TestKernelFromImageNoKernel: an ext image without /boot is refused by name.
func TestKernelFromImageNoKernel(t *testing.T) {
	img := fixtures.Path(t, "gpt")
	_, _, err := KernelFromImage(img, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "no ext partition with /boot/vmlinuz-*") {
		t.Fatalf("gpt fixture: %v", err)
	}
}

func TestVersionLess(t *testing.T) {
	for _, c := range []struct {
		a, b string
		less bool
	}{
		{"6.1.0-9-amd64", "6.1.0-10-amd64", true},
		{"6.1.0-10-amd64", "6.1.0-9-amd64", false},
		{"5.10.0-28-amd64", "6.1.0-1-amd64", true},
		{"6.1.0-9-amd64", "6.1.0-9-amd64", false},
		{"6.1.0", "6.1.0-1", true},
	} {
		if got := versionLess(c.a, c.b); got != c.less {
			t.Errorf("versionLess(%q, %q) = %v", c.a, c.b, got)
		}
	}
	if r := newestPair(map[string]int64{"vmlinuz-6.1.0-9-amd64": 1, "initrd.img-6.1.0-9-amd64": 1, "vmlinuz-6.1.0-10-amd64": 1, "initrd.img-6.1.0-10-amd64": 1, "vmlinuz-7.0": 1}); r != "6.1.0-10-amd64" {
		t.Errorf("newestPair = %q (7.0 has no initrd)", r)
	}
}
