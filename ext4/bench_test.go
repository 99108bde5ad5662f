package ext4

import (
	"os/exec"
	"testing"
	"time"
)

// benchTreeScript: ~50k inodes (50 dirs × 1000 files, some with content,
// plus one 20k-entry htree directory).
const benchTreeScript = `
S="$TMPD/src"; mkdir -p "$S"
python3 - "$S" <<'PY'
import os, sys
root = sys.argv[1]
for d in range(30):
    p = os.path.join(root, "dir%02d" % d); os.mkdir(p)
    for f in range(1000):
        with open(os.path.join(p, "file%04d" % f), "wb") as fh:
            if f % 10 == 0: fh.write(b"x" * 100)
big = os.path.join(root, "big"); os.mkdir(big)
for f in range(20000): open(os.path.join(big, "entry%05d" % f), "wb").close()
PY
truncate -s 256M "$OUT"; mke2fs -q -F -t ext4 -b 4096 -N 60000 -d "$S" "$OUT"
`

func BenchmarkWalk(b *testing.B) {
	img := cachedBuild(b, "bench50k", benchTreeScript)
	fsys := openImage(b, img)
	var n int
	start := time.Now()
	for b.Loop() {
		n = 0
		fsys = openImage(b, img) // fresh caches each round
		if err := fsys.Walk(func([]byte, uint32, *Inode) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/time.Since(start).Seconds(), "inodes/s")
	b.Logf("walked %d inodes", n)
}

// BenchmarkWalkXattrs is the importer's metadata pass: Walk plus Xattrs.
func BenchmarkWalkXattrs(b *testing.B) {
	img := cachedBuild(b, "bench50k", benchTreeScript)
	var n int
	start := time.Now()
	for b.Loop() {
		n = 0
		fsys := openImage(b, img)
		if err := fsys.Walk(func(_ []byte, ino uint32, _ *Inode) error {
			n++
			_, err := fsys.Xattrs(ino)
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/time.Since(start).Seconds(), "inodes/s")
}

// BenchmarkFindLoopMount is the reference: `find` over a kernel loop mount
// (warm cache after the first round).
func BenchmarkFindLoopMount(b *testing.B) {
	img := cachedBuild(b, "bench50k", benchTreeScript)
	mnt := b.TempDir()
	if out, err := exec.Command("mount", "-o", "loop,ro,noatime", img, mnt).CombinedOutput(); err != nil {
		b.Fatalf("mount: %v %s", err, out)
	}
	defer exec.Command("umount", mnt).Run()
	start := time.Now()
	for b.Loop() {
		if out, err := exec.Command("find", mnt, "-printf", "").CombinedOutput(); err != nil {
			b.Fatalf("find: %v %s", err, out)
		}
	}
	b.ReportMetric(float64(50032)*float64(b.N)/time.Since(start).Seconds(), "inodes/s")
}
