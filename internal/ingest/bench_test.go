package ingest

import (
	"context"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"mis/chunker"
	"mis/manifest"
)

// BenchmarkCutoff stores files of one size read whole into the buffer
// ("whole") or streamed through the chunker ("stream"), from files on disk
// (page cache), with the repository's default chunk sizes: the cost of
// the cut-off on either side. After the first round every chunk is a
// duplicate, so the figure is reading, cutting and hashing, where the
// producer's share shows most.
//
//	go test -run '^$' -bench Cutoff -benchtime 5x ./internal/ingest
func BenchmarkCutoff(b *testing.B) {
	const total = 48 << 20
	for _, size := range []int{64 << 10, 1 << 20, 3 << 20, 6 << 20} {
		n := total / size
		dir := b.TempDir()
		var paths []string
		for i := range n {
			p := filepath.Join(dir, fmt.Sprint(i))
			if err := os.WriteFile(p, randomBytes(int64(i), size), 0o644); err != nil {
				b.Fatal(err)
			}
			paths = append(paths, p)
		}
		for _, c := range []struct {
			name  string
			small int64
		}{{"stream", 0}, {"whole", SmallFile}} {
			b.Run(fmt.Sprintf("%dKiB/%s", size>>10, c.name), func(b *testing.B) {
				w := newWriter(b)
				p := chunker.DefaultParams()
				files := func(yield func(File) bool) {
					for _, path := range paths {
						if !yield(File{Size: int64(size), Open: func() (io.Reader, error) { return os.Open(path) }, Done: func([]manifest.Ref) {}}) {
							return
						}
					}
				}
				b.SetBytes(int64(n * size))
				for b.Loop() {
					if _, err := store(context.Background(), w, p, files, Options{}, c.small); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkProducer runs the reading goroutine alone (open, read, cut; no
// hashing or storing) over files of one size, whole or streamed: the
// producer's own cost on either side of the cut-off.
//
//	go test -run '^$' -bench Producer -count 3 ./internal/ingest
func BenchmarkProducer(b *testing.B) {
	const total = 48 << 20
	for _, size := range []int{16 << 10, 256 << 10, 1 << 20, 4 << 20, 6 << 20} {
		n := total / size
		dir := b.TempDir()
		var paths []string
		for i := range n {
			p := filepath.Join(dir, fmt.Sprint(i))
			if err := os.WriteFile(p, randomBytes(int64(i), size), 0o644); err != nil {
				b.Fatal(err)
			}
			paths = append(paths, p)
		}
		for _, c := range []struct {
			name  string
			small int64
		}{{"stream", 0}, {"whole", SmallFile}} {
			b.Run(fmt.Sprintf("%dKiB/%s", size>>10, c.name), func(b *testing.B) {
				files := func(yield func(File) bool) {
					for _, path := range paths {
						if !yield(File{Size: int64(size), Open: func() (io.Reader, error) { return os.Open(path) }}) {
							return
						}
					}
				}
				b.SetBytes(int64(n * size))
				cpu0 := cpuTime()
				for b.Loop() {
					pull, stop := iter.Pull(iter.Seq[File](files))
					p := &producer{ctx: context.Background(), params: chunker.DefaultParams(), pull: pull, small: c.small}
					for {
						if _, err := p.next(); err == io.EOF {
							break
						} else if err != nil {
							b.Fatal(err)
						}
					}
					stop()
				}
				// Wall time suffers from whatever else the machine runs;
				// CPU time much less.
				b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// cpuTime is the process's user plus system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
