package layer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"mis/manifest"
	"mis/repo"
)

// DefaultMaxDepth is how many layers may rest on a whole manifest before a
// version is stored whole again. Measured (BenchmarkLoadManifest, 60,000
// entries): a read costs about the whole manifest's decode plus a few ms
// per layer, so 16 layers keep a read under twice the cost of depth 1,
// while a checkpoint every 16 versions adds little storage next to the
// layers (a whole manifest dedups at chunk level against the previous one).
const DefaultMaxDepth = 16

// SaveOptions tune Save.
type SaveOptions struct {
	// ParentManifest is the resolved manifest of v.Parent when the caller
	// already has it (the importer does), so Save need not read it again.
	// It is checked against the parent's recorded checksum; on a mismatch
	// Save reads the parent's manifest itself.
	ParentManifest *manifest.Manifest
	// MaxDepth overrides DefaultMaxDepth. Negative: never store whole
	// when there is a parent (no depth limit and no size rule), for tests
	// and benchmarks that need deep chains.
	MaxDepth int
}

// Save stores m as a new version named r: it writes the manifest's chunks
// (a layer against v.Parent when there is one, see the package comment),
// then in one commit makes the record and its tag visible. The tag must
// not exist yet.
func Save(ctx context.Context, w *repo.Writer, r Ref, v *Version, m *manifest.Manifest) error {
	return SaveWithOptions(ctx, w, r, v, m, SaveOptions{})
}

// SaveWithOptions is Save with options.
func SaveWithOptions(ctx context.Context, w *repo.Writer, r Ref, v *Version, m *manifest.Manifest, opt SaveOptions) error {
	// Fail before writing anything if the name is taken; checked again in
	// the commit transaction, which is what counts.
	if err := w.View(ctx, func(tx *repo.Tx) error { return checkFree(tx, r) }); err != nil {
		return err
	}
	full, err := manifest.Encode(m)
	if err != nil {
		return err
	}
	v.Sum = sumOf(full)
	v.Base, v.Depth = "", 0
	stream := full
	if v.Parent != "" {
		layer, depth, err := layerOnParent(ctx, w, v.Parent, m, full, opt)
		if err != nil {
			return err
		}
		if layer != nil {
			stream, v.Base, v.Depth = layer, v.Parent, depth
		}
	}
	refs, err := w.WriteStream(bytes.NewReader(stream), nil)
	if err != nil {
		return fmt.Errorf("store manifest: %w", err)
	}
	v.Manifest = toManifestRefs(refs)
	if v.ID == "" {
		v.ID = NewID()
	}
	v.Name, v.Tag = r.Name, r.Tag
	v.Exact = m.Exact
	v.DiskSize = m.DiskSize
	v.Files = m.FileCount()
	if v.Created.IsZero() {
		v.Created = time.Now().UTC()
	}
	// Every chunk of the version (manifest included) is written by now;
	// Commit only seals and indexes them. (Stats must not be called inside
	// the commit function: the writer is locked there.)
	st := w.Stats()
	v.AddedChunks, v.AddedRaw, v.AddedStored = st.NewChunks, st.NewBytes, st.StoredBytes
	err = w.Commit(ctx, func(tx *repo.Tx) error {
		if err := checkFree(tx, r); err != nil {
			return err
		}
		if v.Base != "" {
			if _, err := Get(tx, v.Base); err != nil {
				return fmt.Errorf("layer base: %w", err)
			}
		}
		if err := putRecord(tx, v); err != nil {
			return err
		}
		return tx.Put(tagKey(r), []byte(v.ID))
	})
	if err != nil {
		return err
	}
	writeRecordFiles(w, v)
	return nil
}

func putRecord(tx *repo.Tx, v *Version) error {
	rec, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Put(versionKey(v.ID), rec)
}

// layerOnParent encodes m as a layer on the parent, or returns nil when m
// should be stored whole: the chain would pass the depth limit, or its
// layers would add up to more than the whole manifest.
func layerOnParent(ctx context.Context, w *repo.Writer, parentID string, m *manifest.Manifest, full []byte, opt SaveOptions) ([]byte, int, error) {
	maxDepth := opt.MaxDepth
	if maxDepth == 0 {
		maxDepth = DefaultMaxDepth
	}
	s := writerStore{w}
	var parent *Version
	var chain []*Version
	err := s.view(ctx, func(tx *repo.Tx) error {
		var err error
		parent, err = Get(tx, parentID)
		return err
	})
	if errors.Is(err, repo.ErrNotFound) {
		return nil, 0, nil // a parent removed meanwhile: nothing to rest on
	}
	if err != nil {
		return nil, 0, err
	}
	depth := parent.Depth + 1
	if maxDepth > 0 && depth > maxDepth {
		return nil, 0, nil
	}
	if chain, err = loadChain(ctx, s, parent); err != nil {
		return nil, 0, err
	}
	chainBytes := chainLayerBytes(chain)
	sizeRule := maxDepth > 0
	if sizeRule && chainBytes >= int64(len(full)) {
		return nil, 0, nil
	}
	pm := opt.ParentManifest
	if pm != nil && parent.Sum != "" {
		if sum, err := Sum(pm); err != nil || sum != parent.Sum {
			pm = nil // not what the parent resolves to: read it
		}
	}
	if pm == nil {
		if pm, err = resolve(ctx, s, chain); err != nil {
			return nil, 0, fmt.Errorf("parent %s:%s: %w", parent.Name, parent.Tag, err)
		}
	}
	l := manifest.Diff(pm, m)
	enc := manifest.EncodeLayer(l)
	if sizeRule && chainBytes+int64(len(enc)) >= int64(len(full)) {
		return nil, 0, nil
	}
	// The layer must give m back exactly; checked here, where failing
	// costs nothing, rather than when the version is read.
	if err := checkLayer(pm, enc, full); err != nil {
		return nil, 0, err
	}
	return enc, depth, nil
}

// chainLayerBytes is the stored size of the layers of a chain (its whole
// manifest at the bottom excluded).
func chainLayerBytes(chain []*Version) int64 {
	var n int64
	for _, v := range chain {
		if v.Base != "" {
			n += manifest.StreamSize(v.Manifest)
		}
	}
	return n
}

func checkLayer(base *manifest.Manifest, layer, full []byte) error {
	l, err := manifest.DecodeLayer(layer)
	if err != nil {
		return fmt.Errorf("layer does not read back: %w", err)
	}
	got, err := l.Apply(base)
	if err != nil {
		return fmt.Errorf("layer does not apply: %w", err)
	}
	enc, err := manifest.Encode(got)
	if err != nil {
		return err
	}
	if !bytes.Equal(enc, full) {
		return fmt.Errorf("layer does not reproduce the manifest (a bug in manifest.Diff)")
	}
	return nil
}
