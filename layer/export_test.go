package layer

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"mis/manifest"
	"mis/repo"
)

// SaveChain saves n versions NAME:v0..v<n-1> in one commit: v0 whole, each
// next one a layer on the one before (no checkpoints). next makes version
// i's manifest from version i-1's (nil for i == 0); keep sees each
// manifest saved. One commit instead of n keeps deep-chain tests and
// benchmarks from spending minutes opening Badger read-write; Save's own
// path is tested at smaller depths.
func SaveChain(ctx context.Context, w *repo.Writer, name string, n int, next func(i int, prev *manifest.Manifest) *manifest.Manifest,
	keep func(i int, v *Version, m *manifest.Manifest)) error {
	var prev *manifest.Manifest
	var versions []*Version
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		m := next(i, prev)
		full, err := manifest.Encode(m)
		if err != nil {
			return err
		}
		v := &Version{ID: NewID(), Name: name, Tag: fmt.Sprintf("v%d", i), Created: created.Add(time.Duration(i) * time.Minute),
			Exact: m.Exact, DiskSize: m.DiskSize, Files: m.FileCount(), Sum: sumOf(full)}
		stream := full
		if prev != nil {
			p := versions[i-1]
			v.Parent, v.Base, v.Depth = p.ID, p.ID, p.Depth+1
			stream = manifest.EncodeLayer(manifest.Diff(prev, m))
		}
		refs, err := w.WriteStream(bytes.NewReader(stream), nil)
		if err != nil {
			return err
		}
		v.Manifest = toManifestRefs(refs)
		versions = append(versions, v)
		if keep != nil {
			keep(i, v, m)
		}
		prev = m
	}
	return w.Commit(ctx, func(tx *repo.Tx) error {
		for _, v := range versions {
			if err := putRecord(tx, v); err != nil {
				return err
			}
			if err := tx.Put(tagKey(Ref{v.Name, v.Tag}), []byte(v.ID)); err != nil {
				return err
			}
		}
		return nil
	})
}
