package treeclone_test

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mis/treeclone"
)

// BenchmarkWrites writes the same files through a tree clone's overlay and
// into a plain directory on the filesystem holding the repository (where
// the clone's upper lives), each followed by syncfs, in the same run, and
// reports both rates and their ratio. Sizes: many small files (package
// install, untar) and a few big ones (an image or database file).
//
//	go test -run '^$' -bench Writes -benchtime 6x -timeout 1200s ./treeclone
func BenchmarkWrites(b *testing.B) {
	r, v := importFixture(b, "ext4")
	if err := treeclone.Create(r.Dir(), "bench", v.ID); err != nil {
		b.Fatal(err)
	}
	mt := mountClone(b, r, "bench")
	part := filepath.Join(mt.Dir, mt.Parts[0])
	local := filepath.Join(r.Dir(), "..", "local")
	if err := os.Mkdir(local, 0o755); err != nil {
		b.Fatal(err)
	}
	seq := 0
	for _, c := range []struct {
		files int
		size  int
	}{{2000, 16 << 10}, {8, 32 << 20}} {
		data := make([]byte, c.size)
		rand.Read(data)
		b.Run(fmt.Sprintf("%dx%dKiB", c.files, c.size>>10), func(b *testing.B) {
			var tClone, tLocal time.Duration
			for i := 0; i < b.N; i++ {
				seq++ // the benchmark function runs again with a bigger b.N
				name := fmt.Sprintf("run%d", seq)
				// Alternate which goes first: syncfs also flushes what
				// others left dirty on the shared disk.
				if i%2 == 0 {
					tLocal += writeFiles(b, filepath.Join(local, name), c.files, data)
					tClone += writeFiles(b, filepath.Join(part, name), c.files, data)
				} else {
					tClone += writeFiles(b, filepath.Join(part, name), c.files, data)
					tLocal += writeFiles(b, filepath.Join(local, name), c.files, data)
				}
			}
			total := float64(b.N) * float64(c.files) * float64(c.size) / 1e6
			b.ReportMetric(total/tLocal.Seconds(), "local-MB/s")
			b.ReportMetric(total/tClone.Seconds(), "clone-MB/s")
			b.ReportMetric(tClone.Seconds()/tLocal.Seconds(), "clone/local-time")
		})
	}
}

// writeFiles creates dir with n files holding data, syncs the filesystem
// and returns the time taken.
func writeFiles(b *testing.B, dir string, n int, data []byte) time.Duration {
	start := time.Now()
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	d, err := os.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}
