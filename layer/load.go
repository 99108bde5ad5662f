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
	var buf bytes.Buffer
	buf.Grow(int(manifest.StreamSize(v.Manifest))) // one allocation, not a doubling series
	err := r.ReadChunks(ctx, refIDs(v.Manifest), func(data []byte) error {
		buf.Write(data)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s:%s: manifest: %w", v.Name, v.Tag, err)
	}
	m, err := manifest.DecodeBytes(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("%s:%s: %w", v.Name, v.Tag, err)
	}
	return m, nil
}

func refIDs(refs []manifest.Ref) []chunker.ID {
	ids := make([]chunker.ID, len(refs))
	for i, ref := range refs {
		ids[i] = ref.ID
	}
	return ids
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
