package main

import (
	"context"

	"mis/clone"
	"mis/image"
	"mis/manifest"
	"mis/repo"
)

// importClone imports a clone's disk, read through its layers, as a
// manifest whose parent is the base. Ranges no layer holds are the base's
// bytes (Unchanged), so the importer takes them from the base unread;
// zeros the base and the layers agree on are not read either.
func importClone(ctx context.Context, w *repo.Writer, r *repo.Repo, d *clone.Disk, base *manifest.Manifest, name string, opt image.ImportOptions) (*manifest.Manifest, image.ImportStats, error) {
	opt.Parent = base
	opt.Unchanged = d.Unchanged
	return image.ImportReader(ctx, w, r.Config().Chunker, d, d.Size(), "clone "+name, opt)
}
