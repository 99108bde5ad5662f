package catalog

import (
	"context"

	"mis/layer"
)

// Stats is what the repository holds: logical, unique and stored bytes,
// the ratios between them, and each version's own and shared bytes.
type Stats struct {
	Versions         int     `json:"versions"`
	LogicalBytes     int64   `json:"logical_bytes"` // every version's disk size, summed
	UniqueBytes      int64   `json:"unique_bytes"`  // raw bytes of the distinct chunks
	StoredChunkBytes int64   `json:"stored_chunk_bytes"`
	PackBytes        int64   `json:"stored_bytes"`
	Chunks           int64   `json:"chunks"`
	Packs            int64   `json:"packs"`
	DedupRatio       float64 `json:"dedup_ratio"`       // logical / unique
	CompressionRatio float64 `json:"compression_ratio"` // unique / stored chunk bytes
	TotalRatio       float64 `json:"total_ratio"`       // logical / pack bytes
	// UnreferencedStoredBytes are stored chunk bytes no version uses.
	UnreferencedStoredBytes int64                `json:"unreferenced_stored_bytes"`
	MissingChunks           int64                `json:"missing_chunks"`
	LiveByKind              layer.KindBytes      `json:"live_by_kind"`
	PerVersion              []layer.VersionUsage `json:"per_version"`
}

// Stats reads the index totals and every version's manifest.
func (c *Catalog) Stats(ctx context.Context) (*Stats, error) {
	st, err := c.r.Stats(ctx)
	if err != nil {
		return nil, err
	}
	usage, err := layer.ComputeUsage(ctx, c.r)
	if err != nil {
		return nil, err
	}
	out := &Stats{Versions: len(usage.Versions), PerVersion: usage.Versions,
		UnreferencedStoredBytes: st.StoredBytes - usage.LiveStored, MissingChunks: usage.Missing, LiveByKind: usage.LiveByKind,
		Chunks: st.Chunks, Packs: st.Packs, UniqueBytes: st.RawBytes, StoredChunkBytes: st.StoredBytes, PackBytes: st.PackBytes}
	for _, v := range usage.Versions {
		out.LogicalBytes += v.Version.DiskSize
	}
	if st.RawBytes > 0 {
		out.DedupRatio = float64(out.LogicalBytes) / float64(st.RawBytes)
	}
	if st.StoredBytes > 0 {
		out.CompressionRatio = float64(st.RawBytes) / float64(st.StoredBytes)
	}
	if out.PackBytes > 0 {
		out.TotalRatio = float64(out.LogicalBytes) / float64(out.PackBytes)
	}
	return out, nil
}
