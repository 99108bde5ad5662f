package layer

import (
	"context"
	"encoding/hex"
	"fmt"

	"mis/chunker"
	"mis/manifest"
	"mis/repo"
)

// store is where versions and chunks are read from: the repository for a
// reader, the writer itself inside a write (it sees its pending chunks and
// keeps Badger open read-only, so the repository's own reads would clash).
type store interface {
	view(ctx context.Context, fn func(tx *repo.Tx) error) error
	readChunks(ctx context.Context, ids []chunker.ID, fn func(data []byte) error) error
}

type repoStore struct{ r *repo.Repo }

func (s repoStore) view(ctx context.Context, fn func(tx *repo.Tx) error) error {
	return s.r.View(ctx, fn)
}

func (s repoStore) readChunks(ctx context.Context, ids []chunker.ID, fn func([]byte) error) error {
	return s.r.ReadChunks(ctx, ids, fn)
}

type writerStore struct{ w *repo.Writer }

func (s writerStore) view(ctx context.Context, fn func(tx *repo.Tx) error) error {
	return s.w.View(ctx, fn)
}

func (s writerStore) readChunks(ctx context.Context, ids []chunker.ID, fn func([]byte) error) error {
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return err
		}
		data, err := s.w.Read(id)
		if err != nil {
			return err
		}
		if err := fn(data); err != nil {
			return err
		}
	}
	return nil
}

// Load resolves ref and reads its version's manifest: where every reader of
// a version starts.
func Load(ctx context.Context, r *repo.Repo, ref Ref) (*Version, *manifest.Manifest, error) {
	return load(ctx, r, func(tx *repo.Tx) (*Version, error) { return Resolve(tx, ref) })
}

// LoadID is Load for a version named by its id (a clone's base).
func LoadID(ctx context.Context, r *repo.Repo, id string) (*Version, *manifest.Manifest, error) {
	return load(ctx, r, func(tx *repo.Tx) (*Version, error) { return Get(tx, id) })
}

func load(ctx context.Context, r *repo.Repo, find func(tx *repo.Tx) (*Version, error)) (*Version, *manifest.Manifest, error) {
	var v *Version
	if err := r.View(ctx, func(tx *repo.Tx) error {
		var err error
		v, err = find(tx)
		return err
	}); err != nil {
		return nil, nil, err
	}
	m, err := LoadManifest(ctx, r, v)
	if err != nil {
		return nil, nil, fmt.Errorf("%s:%s: %w", v.Name, v.Tag, err)
	}
	return v, m, nil
}

// LoadManifest reads a version's manifest, resolving its chain of layers.
func LoadManifest(ctx context.Context, r *repo.Repo, v *Version) (*manifest.Manifest, error) {
	return loadManifest(ctx, repoStore{r}, v)
}

func loadManifest(ctx context.Context, s store, v *Version) (*manifest.Manifest, error) {
	chain, err := loadChain(ctx, s, v)
	if err != nil {
		return nil, fmt.Errorf("%s:%s: %w", v.Name, v.Tag, err)
	}
	m, err := resolve(ctx, s, chain)
	if err != nil {
		return nil, fmt.Errorf("%s:%s: %w", v.Name, v.Tag, err)
	}
	return m, nil
}

// maxChain bounds a chain walk, so a corrupt record cycle ends in an error.
const maxChain = 1 << 16

// loadChain returns v and the versions its layers rest on, top first,
// ending with one stored whole, read in one metadata session.
func loadChain(ctx context.Context, s store, v *Version) ([]*Version, error) {
	if v.Base == "" {
		return []*Version{v}, nil
	}
	var chain []*Version
	err := s.view(ctx, func(tx *repo.Tx) error {
		var err error
		chain, err = Chain(tx, v)
		return err
	})
	return chain, err
}

// Chain returns v and the versions its layers rest on, top first; the last
// is stored whole. Reading v's manifest reads every manifest stream of its
// chain, so those chunks are in use by v too (usage statistics count them).
func Chain(tx *repo.Tx, v *Version) ([]*Version, error) {
	chain := []*Version{v}
	seen := map[string]bool{v.ID: true}
	for cur := v; cur.Base != ""; {
		if seen[cur.Base] || len(chain) > maxChain {
			return nil, fmt.Errorf("version %s: the chain of layers loops back to %s", cur.ID, cur.Base)
		}
		seen[cur.Base] = true
		base, err := Get(tx, cur.Base)
		if err != nil {
			return nil, fmt.Errorf("layer base of version %s: %w", cur.ID, err)
		}
		chain = append(chain, base)
		cur = base
	}
	return chain, nil
}

// resolve reads every stream of the chain in one pass, decodes the whole
// manifest at its bottom and applies the layers upward, then checks the
// result once.
func resolve(ctx context.Context, s store, chain []*Version) (*manifest.Manifest, error) {
	// Each version's stream gets its own buffer: decoded manifests share
	// the buffer's memory.
	var ids []chunker.ID
	var owner []int
	bufs := make([][]byte, len(chain))
	for i, v := range chain {
		ids = append(ids, refIDs(v.Manifest)...)
		for range v.Manifest {
			owner = append(owner, i)
		}
		// The record's sizes size the buffer only up to a bound (a bigger
		// manifest grows it by appending): a damaged record claiming 4 GiB
		// chunks must not allocate them.
		bufs[i] = make([]byte, 0, min(manifest.StreamSize(v.Manifest), 16<<20))
	}
	k := 0
	err := s.readChunks(ctx, ids, func(data []byte) error {
		bufs[owner[k]] = append(bufs[owner[k]], data...)
		k++
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	bottom := chain[len(chain)-1]
	m, l, err := manifest.DecodeStream(bufs[len(chain)-1])
	if err != nil {
		return nil, fmt.Errorf("manifest of version %s: %w", bottom.ID, err)
	}
	if l != nil {
		return nil, fmt.Errorf("version %s stores a layer but names no base", bottom.ID)
	}
	layers := make([]*manifest.Layer, 0, len(chain)-1)
	for i := len(chain) - 2; i >= 0; i-- {
		v := chain[i]
		_, l, err := manifest.DecodeStream(bufs[i])
		if err != nil {
			return nil, fmt.Errorf("layer of version %s: %w", v.ID, err)
		}
		if l == nil {
			return nil, fmt.Errorf("version %s names base %s but stores a whole manifest", v.ID, v.Base)
		}
		layers = append(layers, l)
	}
	if len(layers) > 0 {
		if m, err = manifest.ApplyLayers(m, layers); err != nil {
			return nil, fmt.Errorf("layers of %s: %w", chain[0].ID, err)
		}
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	top := chain[0]
	if m.DiskSize != top.DiskSize || m.FileCount() != top.Files {
		return nil, fmt.Errorf("resolved manifest has %d bytes and %d files, the version record says %d and %d",
			m.DiskSize, m.FileCount(), top.DiskSize, top.Files)
	}
	return m, nil
}

// Sum is the checksum a version records of its resolved manifest.
func Sum(m *manifest.Manifest) (string, error) {
	enc, err := manifest.Encode(m)
	if err != nil {
		return "", err
	}
	return sumOf(enc), nil
}

func sumOf(enc []byte) string {
	id := chunker.Sum(enc)
	return hex.EncodeToString(id[:])
}

func refIDs(refs []manifest.Ref) []chunker.ID {
	ids := make([]chunker.ID, len(refs))
	for i, ref := range refs {
		ids[i] = ref.ID
	}
	return ids
}

// ForEachRef enumerates every chunk every version uses, naming the owner as
// NAME:TAG (or the version id when untagged): its own manifest stream's
// chunks, then every chunk its resolved manifest references. verify uses it
// to check that all references resolve, that every chain of layers
// resolves to the manifest recorded (Sum), and to name the versions a
// damaged chunk hurts. A manifest that cannot be read is returned as a
// problem, not an error, so verify can go on and report everything it
// finds.
func ForEachRef(ctx context.Context, r *repo.Repo, fn func(owner string, id chunker.ID) error) (problems []string, err error) {
	versions, names, err := versionsAndNames(ctx, r)
	if err != nil {
		return nil, err
	}
	for _, v := range versions {
		owner := ownerName(v, names)
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
		if v.Sum != "" {
			if sum, err := Sum(m); err != nil || sum != v.Sum {
				problems = append(problems, fmt.Sprintf("%s: the resolved manifest does not match the version's checksum (layer chain damaged)", owner))
				continue
			}
		}
		if err := m.ForEachRef(func(ref manifest.Ref) error { return fn(owner, ref.ID) }); err != nil {
			return problems, err
		}
	}
	return problems, nil
}

func versionsAndNames(ctx context.Context, r *repo.Repo) ([]*Version, map[string][]string, error) {
	var versions []*Version
	names := map[string][]string{}
	err := r.View(ctx, func(tx *repo.Tx) error {
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
	return versions, names, err
}

func ownerName(v *Version, names map[string][]string) string {
	if n := names[v.ID]; len(n) > 0 {
		return n[0]
	}
	return "version " + v.ID
}

// ownRefs calls fn for every chunk the version's own stored stream holds
// or names: the stream's chunks, and the chunk refs a whole manifest or a
// layer carries. Refs a layer takes over from its base are not named: the
// base names them. Every chunk a resolved manifest uses is carried by some
// version of its chain, and rm rebases chains before it deletes a record,
// so the union over all versions is everything in use.
func ownRefs(ctx context.Context, r *repo.Repo, v *Version, fn func(chunker.ID) error) error {
	for _, ref := range v.Manifest {
		if err := fn(ref.ID); err != nil {
			return err
		}
	}
	var buf []byte
	if err := r.ReadChunks(ctx, refIDs(v.Manifest), func(data []byte) error {
		buf = append(buf, data...)
		return nil
	}); err != nil {
		return err
	}
	m, l, err := manifest.DecodeStream(buf)
	if err != nil {
		return err
	}
	each := func(ref manifest.Ref) error { return fn(ref.ID) }
	if m != nil {
		return m.ForEachRef(each)
	}
	return l.ForEachRef(each)
}
