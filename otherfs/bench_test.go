package otherfs_test

import (
	"io"
	"os"
	"testing"

	"mis/fixtures"
	"mis/manifest"
	"mis/otherfs"
)

// BenchmarkWalk walks each fixture's secondary filesystem and reads all
// its content; bytes/s is file content read.
func BenchmarkWalk(b *testing.B) {
	for _, c := range []struct{ kind, fstype string }{{"gpt", "vfat"}, {"iso", "iso9660"}, {"squashfs", "squashfs"}} {
		b.Run(c.kind, func(b *testing.B) {
			img := fixtures.Path(b, c.kind)
			p := partition(b, img, c.fstype)
			f, err := os.Open(img)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			var total int64
			for b.Loop() {
				total = 0
				_, err := otherfs.Walk(f, p.Start, p.Size, p.Filesystem, func(e *manifest.Entry, content io.Reader) error {
					if content != nil {
						n, err := io.Copy(io.Discard, content)
						total += n
						return err
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(total)
		})
	}
}
