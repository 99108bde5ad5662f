package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"mis/disk"
	"mis/fixtures"
	"mis/testkit/treecmp"
	"mis/testkit/vmtest"
)

// TestCLIBootCloneAndCommit is the clones' end-to-end test: a Debian image
// with a kernel is imported, cloned and booted under qemu (TCG, direct
// kernel boot with the image's own kernel and initrd, root=/dev/vda2)
// straight from the clone's FUSE disk.raw. The guest prints a marker and
// writes a file; after it powers off, mis commit makes a new version whose
// export holds that file and passes e2fsck, while the base version still
// exports byte-identical to its input.
func TestCLIBootCloneAndCommit(t *testing.T) {
	if os.Getenv("MIS_FIXTURES_DEBIAN") != "1" {
		t.Skip("slow and needs the Debian mirror: set MIS_FIXTURES_DEBIAN=1")
	}
	if err := vmtest.Available(); err != nil {
		t.Fatal(err) // CI installs qemu; with the Debian opt-in, its absence is a failure
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for FUSE")
	}
	img := fixtures.Path(t, "debian")
	kernel, initrd, err := vmtest.KernelFromImage(img, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(t.TempDir(), "repo")
	mustMis(t, repo, "init")
	mustMis(t, repo, "import", "-q", img, "debian:base")
	mustMis(t, repo, "clone", "debian:base", "vm1")

	dir, pid := mountClone(t, repo, "vm1")
	content := "written-in-guest-" + time.Now().UTC().Format("20060102T150405")
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	res, err := vmtest.BootCheck(ctx, vmtest.Config{
		Disk:    filepath.Join(dir, "disk.raw"),
		Kernel:  kernel,
		Initrd:  initrd,
		Timeout: 5 * time.Minute,
		Log:     &testLog{t: t},
	}, vmtest.Check{Write: "/root/from-guest.txt", Content: content})
	if err != nil {
		umount(t, repo, dir, pid)
		t.Fatalf("boot from the clone's disk.raw: %v", err)
	}
	t.Logf("booted kernel %s from the clone (init %s) and powered off in %s", res.Release, res.Init, res.Elapsed.Round(time.Second))
	umount(t, repo, dir, pid)

	var commit map[string]any
	if err := json.Unmarshal([]byte(mustMis(t, repo, "--json", "commit", "vm1", "debian:booted")), &commit); err != nil {
		t.Fatalf("commit --json: %v", err)
	}
	t.Logf("commit: %v", commit)

	out := filepath.Join(t.TempDir(), "booted.raw")
	mustMis(t, repo, "export", "-q", "debian:booted", out)
	got, err := vmtest.ReadGuestFile(out, 2, "/root/from-guest.txt")
	if err != nil {
		t.Fatalf("the file the guest wrote is not in the committed version: %v", err)
	}
	if strings.TrimSpace(string(got)) != content {
		t.Fatalf("guest file holds %q, want %q", got, content)
	}
	if err := vmtest.FsckExt(out); err != nil {
		t.Fatalf("e2fsck of the committed version: %v", err)
	}
	// The committed version's parent is the base.
	var info struct {
		Version struct {
			Parent string `json:"parent"`
		} `json:"version"`
	}
	if err := json.Unmarshal([]byte(mustMis(t, repo, "--json", "info", "debian:booted")), &info); err != nil {
		t.Fatal(err)
	}
	if info.Version.Parent == "" {
		t.Error("committed version has no parent")
	}

	base := filepath.Join(t.TempDir(), "base.raw")
	mustMis(t, repo, "export", "-q", "debian:base", base)
	if err := exec.Command("cmp", img, base).Run(); err != nil {
		t.Fatalf("base version no longer exports byte-identical to its input: %v", err)
	}
}

// testLog sends the guest console to t.Log a line at a time (shown with -v
// or on failure).
type testLog struct {
	t    *testing.T
	mu   sync.Mutex
	line []byte
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.line = append(l.line, p...)
	for {
		i := bytes.IndexByte(l.line, '\n')
		if i < 0 {
			return len(p), nil
		}
		l.t.Log(strings.TrimRight(string(l.line[:i]), "\r"))
		l.line = l.line[i+1:]
	}
}

// TestCLIFreshExportBoots checks fresh export on Debian: a fresh export of the
// Debian image, at its own size and grown by --size, passes e2fsck, its
// root tree matches a loop mount of the original on every attribute but
// ctime (which no tool can set), and it boots under qemu to the marker.
func TestCLIFreshExportBoots(t *testing.T) {
	if os.Getenv("MIS_FIXTURES_DEBIAN") != "1" {
		t.Skip("slow and needs the Debian mirror: set MIS_FIXTURES_DEBIAN=1")
	}
	if err := vmtest.Available(); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for FUSE and loop mounts")
	}
	img := fixtures.Path(t, "debian")
	kernel, initrd, err := vmtest.KernelFromImage(img, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	origRoot := partitionOf(t, img, 2)
	want := treecmp.LoopMount(t, img, origRoot.Start, origRoot.Size, "ext4")
	repo := filepath.Join(t.TempDir(), "repo")
	mustMis(t, repo, "init")
	mustMis(t, repo, "import", "-q", img, "debian:base")

	for _, size := range []string{"", "2G"} {
		name := "same-size"
		if size != "" {
			name = "grown-" + size
		}
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "fresh.raw")
			args := []string{"export", "-q", "--fresh", "debian:base", out}
			if size != "" {
				args = append(args, "--size", size)
			}
			start := time.Now()
			mustMis(t, repo, args...)
			t.Logf("fresh export %s in %s", name, time.Since(start).Round(time.Millisecond))
			if err := vmtest.FsckExt(out); err != nil {
				t.Fatal(err)
			}
			root := partitionOf(t, out, 2)
			if size != "" && root.Size <= origRoot.Size {
				t.Fatalf("--size %s: root partition is %d bytes, not grown from %d", size, root.Size, origRoot.Size)
			}
			got := treecmp.LoopMount(t, out, root.Start, root.Size, "ext4")
			diffs, err := treecmp.Compare(want, got, treecmp.Options{Skip: map[string]bool{"lost+found": true}})
			if err != nil {
				t.Fatal(err)
			}
			if len(diffs) > 0 {
				t.Fatalf("fresh export's root differs from the original:\n%s", strings.Join(diffs, "\n"))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
			defer cancel()
			res, err := vmtest.BootCheck(ctx, vmtest.Config{Disk: out, Kernel: kernel, Initrd: initrd, Timeout: 5 * time.Minute, Log: &testLog{t: t}},
				vmtest.Check{Write: "/root/fresh-boot.txt", Content: "fresh"})
			if err != nil {
				t.Fatalf("boot of the fresh export: %v", err)
			}
			t.Logf("fresh export %s booted kernel %s in %s", name, res.Release, res.Elapsed.Round(time.Second))
			if err := vmtest.FsckExt(out); err != nil {
				t.Fatalf("after the boot: %v", err)
			}
		})
	}
}

// partitionOf reads partition index of a disk image with our reader.
func partitionOf(t *testing.T, img string, index int) disk.Partition {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	l, err := disk.Read(f, fi.Size())
	if err != nil {
		t.Fatalf("%s: %v", img, err)
	}
	for _, p := range l.Partitions {
		if p.Index == index {
			return p
		}
	}
	t.Fatalf("%s has no partition %d", img, index)
	return disk.Partition{}
}
