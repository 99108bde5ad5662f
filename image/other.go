package image

import (
	"fmt"
	"io"

	"mis/chunker"
	"mis/disk"
	"mis/manifest"
	"mis/otherfs"
)

// importOther walks a FAT, ISO 9660 or squashfs filesystem into the
// manifest. Its bytes stay in the residual (they are not added to
// im.spans), so export reproduces the partition exactly without knowing the
// format; the files' content is stored as detached chunks (no extents) for
// dedup, info and mounts. Progress counts disk bytes, which the residual
// pass covers, so this walk does not report any.
func (im *importer) importOther(p disk.Partition) (*manifest.Filesystem, error) {
	out := &manifest.Filesystem{PartIndex: p.Index, Type: p.Filesystem, Offset: p.Start, Size: p.Size}
	info, err := otherfs.Walk(im.r, p.Start, p.Size, p.Filesystem, func(e *manifest.Entry, content io.Reader) error {
		if err := im.ctx.Err(); err != nil {
			return err
		}
		if content != nil {
			refs, err := im.storeDetached(content, int64(e.Size))
			if err != nil {
				return fmt.Errorf("%q: %w", e.Paths[0], err)
			}
			e.Content = refs
		}
		out.Files = append(out.Files, *e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	out.BlockSize, out.UUID = info.BlockSize, info.UUID
	if info.Label != "" {
		out.Label = []byte(info.Label)
	}
	return out, nil
}

// storeDetached chunks a stream of known size: small ones whole in memory,
// large ones through a streaming chunker.
func (im *importer) storeDetached(rd io.Reader, size int64) ([]manifest.Ref, error) {
	if size <= smallFile {
		if int64(cap(im.buf)) < size {
			im.buf = make([]byte, smallFile)
		}
		buf := im.buf[:size]
		if _, err := io.ReadFull(rd, buf); err != nil {
			return nil, err
		}
		return im.storeBuffer(buf)
	}
	ch := chunker.New(rd, im.params)
	var refs []manifest.Ref
	for {
		data, err := ch.Next()
		if err == io.EOF {
			return refs, nil
		}
		if err != nil {
			return nil, err
		}
		ref, err := im.put(data)
		if err != nil {
			return nil, err
		}
		refs = append(refs, ref)
	}
}
