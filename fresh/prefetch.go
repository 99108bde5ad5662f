package fresh

import (
	"context"
	"io"
	"os"
	"path/filepath"
)

// prefetchTree reads every regular file under dir in the order mke2fs -d
// (and mcopy) will: directory entries by name, depth first. Files of the
// mount are opened with FOPEN_KEEP_CACHE, so what this reads stays in the
// page cache and the tool's own reads, lookups and stats are served by the
// kernel without a FUSE round trip, while chunk decompression runs on this
// goroutine, overlapping the tool's own work. It stops when ctx ends.
func prefetchTree(ctx context.Context, dir string) {
	buf := make([]byte, 1<<20)
	var walk func(string)
	walk = func(d string) {
		ents, err := os.ReadDir(d)
		if err != nil {
			return
		}
		for _, e := range ents {
			if ctx.Err() != nil {
				return
			}
			p := filepath.Join(d, e.Name())
			switch {
			case e.IsDir():
				walk(p)
			case e.Type().IsRegular():
				if f, err := os.Open(p); err == nil {
					io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, buf)
					f.Close()
				}
			}
		}
	}
	walk(dir)
}
