package treeclone

import (
	"context"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"mis/chunker"
	"mis/internal/ingest"
	"mis/manifest"
	"mis/repo"
)

// storeContent chunks every pending upper file through one ingest
// pipeline, each cut on its own (so a file dedups against the base
// wherever it lay): hashing and compression run on parallel workers while
// the next file is read. A file whose size changed since the walk is an
// error.
func storeContent(ctx context.Context, w *repo.Writer, params chunker.Params, fss []manifest.Filesystem, pending []pendingFile, st *CommitStats) error {
	files := func(yield func(ingest.File) bool) {
		for _, p := range pending {
			e := &fss[p.fs].Files[p.entry]
			if !yield(ingest.File{
				Size: p.size,
				Open: func() (io.Reader, error) {
					return os.OpenFile(p.abs, os.O_RDONLY|unix.O_NOATIME|unix.O_NOFOLLOW, 0)
				},
				Done: func(refs []manifest.Ref) {
					e.Content = refs
					e.Extents = nil
				},
				Name: func() string { return p.abs },
			}) {
				return
			}
		}
	}
	s, err := ingest.Store(ctx, w, params, files, ingest.Options{})
	st.FilesRead += s.Files
	st.BytesRead += s.Bytes
	return err
}
