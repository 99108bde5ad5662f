package layer

import (
	"bytes"
	"context"
	"fmt"

	"mis/manifest"
	"mis/repo"
)

// rebaseDependents writes new manifest streams for the versions whose
// layers rest on v, which is about to be removed: a layer on v's base
// (whose manifest they already contained, through v), or a whole manifest
// when v was stored whole or the layer would be too big. It returns every
// record that must change in the commit that deletes v (the rebased
// versions, and versions further up whose depth drops) and the ids of the
// rebased ones. The new streams are written, not committed.
func rebaseDependents(ctx context.Context, w *repo.Writer, v *Version, all []*Version) (updates []*Version, rebased []string, err error) {
	s := writerStore{w}
	byID := map[string]*Version{}
	for _, x := range all {
		if x.ID != v.ID {
			byID[x.ID] = x
		}
	}
	var base *manifest.Manifest
	var baseChainBytes int64
	if v.Base != "" {
		bv, ok := byID[v.Base]
		if !ok {
			return nil, nil, fmt.Errorf("version %s: its layer base %s is missing", v.ID, v.Base)
		}
		chain, err := loadChain(ctx, s, bv)
		if err != nil {
			return nil, nil, err
		}
		if base, err = resolve(ctx, s, chain); err != nil {
			return nil, nil, err
		}
		baseChainBytes = chainLayerBytes(chain)
	}
	changed := map[string]*Version{}
	for _, c := range all {
		if c.Base != v.ID {
			continue
		}
		cm, err := loadManifest(ctx, s, c)
		if err != nil {
			return nil, nil, err
		}
		full, err := manifest.Encode(cm)
		if err != nil {
			return nil, nil, err
		}
		nc := *c
		nc.Base, nc.Depth = "", 0
		stream := full
		if base != nil {
			enc := manifest.EncodeLayer(manifest.Diff(base, cm))
			if baseChainBytes+int64(len(enc)) < int64(len(full)) {
				if err := checkLayer(base, enc, full); err != nil {
					return nil, nil, err
				}
				stream, nc.Base = enc, v.Base
			}
		}
		refs, err := w.WriteStream(bytes.NewReader(stream), nil)
		if err != nil {
			return nil, nil, fmt.Errorf("store manifest of version %s: %w", c.ID, err)
		}
		nc.Manifest = toManifestRefs(refs)
		byID[c.ID] = &nc
		changed[c.ID] = &nc
		rebased = append(rebased, c.ID)
	}
	// Depths above the rebased versions drop; recompute them all.
	depth := map[string]int{}
	var depthOf func(id string, hops int) (int, error)
	depthOf = func(id string, hops int) (int, error) {
		if d, ok := depth[id]; ok {
			return d, nil
		}
		x, ok := byID[id]
		if !ok {
			return 0, fmt.Errorf("layer base %s is missing", id)
		}
		if hops > maxChain {
			return 0, fmt.Errorf("the chain of layers of %s loops", id)
		}
		d := 0
		if x.Base != "" {
			bd, err := depthOf(x.Base, hops+1)
			if err != nil {
				return 0, err
			}
			d = bd + 1
		}
		depth[id] = d
		return d, nil
	}
	for id, x := range byID {
		d, err := depthOf(id, 0)
		if err != nil {
			return nil, nil, err
		}
		if d != x.Depth {
			if changed[id] == nil {
				cp := *x
				changed[id] = &cp
			}
			changed[id].Depth = d
		}
	}
	for _, x := range all {
		if u := changed[x.ID]; u != nil {
			updates = append(updates, u)
		}
	}
	return updates, rebased, nil
}
