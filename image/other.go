package image

import (
	"errors"
	"fmt"
	"io"

	"mis/disk"
	"mis/internal/ingest"
	"mis/manifest"
	"mis/otherfs"
)

// importOther walks a FAT, ISO 9660 or squashfs filesystem into the
// manifest. Its bytes stay in the residual (they are not added to
// im.spans), so export reproduces the partition exactly without knowing the
// format; the files' content is stored as detached chunks (no extents) for
// dedup, info and mounts, through the same ingest pipeline as ext files:
// the walk hands each file over and waits while it is read. Progress
// counts disk bytes, which the residual pass covers, so this walk does not
// report any.
func (im *importer) importOther(p disk.Partition) (*manifest.Filesystem, error) {
	out := &manifest.Filesystem{PartIndex: p.Index, Type: p.Filesystem, Offset: p.Start, Size: p.Size}
	var (
		info    *otherfs.Info
		walkErr error
	)
	errStopped := errors.New("stopped")
	files := func(yield func(ingest.File) bool) {
		info, walkErr = otherfs.Walk(im.r, p.Start, p.Size, p.Filesystem, func(e *manifest.Entry, content io.Reader) error {
			if err := im.ctx.Err(); err != nil {
				return err
			}
			i := len(out.Files)
			out.Files = append(out.Files, *e)
			if content == nil {
				return nil
			}
			path := e.Paths[0]
			// content is valid until this callback returns, and yield
			// returns only once the pipeline has read it to the end.
			if !yield(ingest.File{
				Size: int64(e.Size),
				Open: func() (io.Reader, error) { return content, nil },
				Done: func(refs []manifest.Ref) { out.Files[i].Content = refs },
				Name: func() string { return fmt.Sprintf("%q", path) },
			}) {
				return errStopped
			}
			return nil
		})
	}
	if _, err := ingest.Store(im.ctx, im.w, im.params, files, ingest.Options{}); err != nil {
		return nil, err
	}
	if walkErr != nil {
		return nil, walkErr
	}
	out.BlockSize, out.UUID = info.BlockSize, info.UUID
	if info.Label != "" {
		out.Label = []byte(info.Label)
	}
	return out, nil
}
