package layer

import (
	"bytes"
	"context"
	"fmt"

	"mis/chunker"
	"mis/manifest"
	"mis/repo"
)

// LoadManifest reads and decodes a version's manifest.
func LoadManifest(ctx context.Context, r *repo.Repo, v *Version) (*manifest.Manifest, error) {
	ids := make([]chunker.ID, len(v.Manifest))
	for i, ref := range v.Manifest {
		ids[i] = ref.ID
	}
	locs, err := r.Lookup(ctx, ids)
	if err != nil {
		return nil, err
	}
	cr := r.NewChunkReader()
	defer cr.Close()
	var scratch []byte
	var buf bytes.Buffer
	buf.Grow(int(manifest.StreamSize(v.Manifest))) // one allocation, not a doubling series
	for _, ref := range v.Manifest {
		loc, ok := locs[ref.ID]
		if !ok {
			return nil, fmt.Errorf("%s:%s: manifest chunk %s is missing from the repository", v.Name, v.Tag, ref.ID.Short())
		}
		data, err := cr.Read(ref.ID, loc, scratch[:0])
		if err != nil {
			return nil, fmt.Errorf("%s:%s: manifest: %w", v.Name, v.Tag, err)
		}
		buf.Write(data)
		scratch = data
	}
	m, err := manifest.DecodeBytes(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("%s:%s: %w", v.Name, v.Tag, err)
	}
	return m, nil
}

// ForEachRef enumerates every chunk every version uses, naming the owner as
// NAME:TAG (or the version id when untagged). verify uses it to check that
// all references resolve and to name the versions a damaged chunk hurts.
// A manifest that cannot be read is returned as a problem, not an error, so
// verify can go on and report everything it finds.
func ForEachRef(ctx context.Context, r *repo.Repo, fn func(owner string, id chunker.ID) error) (problems []string, err error) {
	var versions []*Version
	names := map[string][]string{}
	err = r.View(ctx, func(tx *repo.Tx) error {
		var err error
		if versions, err = Versions(tx); err != nil {
			return err
		}
		tags, err := List(tx)
		for _, t := range tags {
			names[t.Version.ID] = append(names[t.Version.ID], t.Ref.String())
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, v := range versions {
		owner := "version " + v.ID
		if n := names[v.ID]; len(n) > 0 {
			owner = n[0]
		}
		for _, ref := range v.Manifest {
			if err := fn(owner+" (manifest)", ref.ID); err != nil {
				return problems, err
			}
		}
		m, err := LoadManifest(ctx, r, v)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: cannot read manifest: %v", owner, err))
			continue
		}
		if err := m.ForEachRef(func(ref manifest.Ref) error { return fn(owner, ref.ID) }); err != nil {
			return problems, err
		}
	}
	return problems, nil
}
