package main_test

import (
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mis/fixtures"
)

// BenchmarkCloneRandomWrites measures random 4 KiB writes into a mounted
// clone's disk.raw against the same writes into a local sparse file on the
// repository's filesystem, in one run: with O_DIRECT (as qemu cache=none
// writes) and buffered, each followed by one fsync. The goal is a
// ratio of at least 0.5. It also reports the mount process's peak memory
// (VmHWM) after the writes and a full read of disk.raw.
//
//	go test -run '^$' -bench CloneRandomWrites -benchtime 1x -timeout 600s ./cmd/mis
func BenchmarkCloneRandomWrites(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root for FUSE")
	}
	repo, img := benchRepo(b)
	mustMisB(b, repo, "clone", "img:v1", "bench")
	dir := b.TempDir()
	logPath := filepath.Join(b.TempDir(), "mount.log")
	mustMisB(b, repo, "mount", "-d", "--log", logPath, "bench", dir)
	defer mustMisB(b, repo, "umount", dir)
	pid := benchPid(b, logPath)
	st, _ := os.Stat(img)
	size := st.Size()
	local := filepath.Join(filepath.Dir(repo), "local.raw")
	for range b.N {
		for _, direct := range []bool{true, false} {
			mode := "buffered"
			if direct {
				mode = "O_DIRECT"
			}
			os.Remove(local)
			if err := os.WriteFile(local, nil, 0o600); err != nil {
				b.Fatal(err)
			}
			os.Truncate(local, size)
			const writes = 20000
			clone := randomWrites(b, filepath.Join(dir, "disk.raw"), size, writes, direct)
			ref := randomWrites(b, local, size, writes, direct)
			b.Logf("%s: clone %.0f writes/s (%.1f MB/s), local sparse file %.0f writes/s: ratio %.2f",
				mode, clone, clone*4096/1e6, ref, clone/ref)
			b.ReportMetric(clone/ref, "ratio-"+mode)
		}
	}
	// Peak memory of the serving process, after also reading the whole disk.
	if _, err := os.ReadFile(filepath.Join(dir, "disk.raw")); err != nil {
		b.Fatal(err)
	}
	hwm := vmHWM(b, pid)
	b.Logf("mount process VmHWM: %d KiB (%.0f MiB)", hwm, float64(hwm)/1024)
	b.ReportMetric(float64(hwm)/1024, "VmHWM-MiB")
}

// randomWrites does n 4 KiB writes at random aligned offsets, then fsync,
// and returns writes per second.
func randomWrites(b *testing.B, path string, size int64, n int, direct bool) float64 {
	flags := os.O_RDWR
	if direct {
		flags |= unix.O_DIRECT
	}
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		b.Fatalf("open %s: %v", path, err)
	}
	defer f.Close()
	// O_DIRECT needs an aligned buffer: take one from an mmap.
	buf, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Munmap(buf)
	rng := rand.New(rand.NewSource(42))
	blocks := size / 4096
	start := time.Now()
	for i := range n {
		buf[0], buf[100] = byte(i), byte(i>>8)
		if _, err := f.WriteAt(buf, rng.Int63n(blocks)*4096); err != nil {
			b.Fatalf("write %s: %v", path, err)
		}
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	return float64(n) / time.Since(start).Seconds()
}

func benchRepo(b *testing.B) (string, string) {
	img := fixtures.Path(b, "ext4")
	repo := filepath.Join(b.TempDir(), "repo")
	mustMisB(b, repo, "init")
	mustMisB(b, repo, "import", "-q", img, "img:v1")
	return repo, img
}

func mustMisB(b *testing.B, repo string, args ...string) {
	b.Helper()
	out, err := exec.Command(misBin, append([]string{"--repo", repo}, args...)...).CombinedOutput()
	if err != nil {
		b.Fatalf("mis %v: %v\n%s", args, err, out)
	}
}

func benchPid(b *testing.B, logPath string) int {
	data, err := os.ReadFile(logPath)
	if err != nil {
		b.Fatal(err)
	}
	m := pidRE.FindStringSubmatch(string(data))
	if m == nil {
		b.Fatalf("no pid in %s", data)
	}
	pid, _ := strconv.Atoi(m[1])
	return pid
}

func vmHWM(b *testing.B, pid int) int64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	b.Fatal("no VmHWM")
	return 0
}
