package manifest

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"sort"

	"mis/chunker"
)

// MarshalJSON writes a Ref as ["hex id", size]: compact, and readable when a
// human pipes a manifest through zstd -d.
func (r Ref) MarshalJSON() ([]byte, error) {
	return []byte(fmt.Sprintf(`["%s",%d]`, hex.EncodeToString(r.ID[:]), r.Size)), nil
}

// UnmarshalJSON reads the form MarshalJSON writes.
func (r *Ref) UnmarshalJSON(b []byte) error {
	var pair [2]json.RawMessage
	if err := json.Unmarshal(b, &pair); err != nil {
		return fmt.Errorf("chunk ref: %w", err)
	}
	var s string
	if err := json.Unmarshal(pair[0], &s); err != nil {
		return fmt.Errorf("chunk ref id: %w", err)
	}
	raw, err := hex.DecodeString(s)
	if err != nil || len(raw) != len(r.ID) {
		return fmt.Errorf("chunk ref id %q is not %d hex bytes", s, len(r.ID))
	}
	copy(r.ID[:], raw)
	return json.Unmarshal(pair[1], &r.Size)
}

// Encode serialises m. The output is deterministic for a given manifest.
func Encode(m *Manifest) ([]byte, error) {
	if m.FormatVersion == 0 {
		m.FormatVersion = FormatVersion
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Decode parses a manifest written by Encode and checks its structure.
func Decode(r io.Reader) (*Manifest, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return DecodeBytes(b)
}

// DecodeBytes is Decode for a manifest already in memory (no copy).
func DecodeBytes(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if m.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("manifest format version %d is not supported (this mis reads %d)", m.FormatVersion, FormatVersion)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks the invariants export relies on: residual runs and file
// extents lie inside the disk, do not overlap, and together cover it; the
// residual data stream holds exactly the non-zero runs' bytes; each file's
// extents consume exactly its content stream.
func (m *Manifest) Validate() error {
	type span struct{ off, len int64 }
	var spans []span
	var residualBytes int64
	for _, r := range m.Residual {
		if r.Len <= 0 || r.Off < 0 || r.Off+r.Len > m.DiskSize {
			return fmt.Errorf("manifest: residual run [%d,+%d) outside disk of %d bytes", r.Off, r.Len, m.DiskSize)
		}
		spans = append(spans, span{r.Off, r.Len})
		if !r.Zero {
			residualBytes += r.Len
		}
	}
	if got := StreamSize(m.ResidualData); got != residualBytes {
		return fmt.Errorf("manifest: residual runs need %d bytes but the residual stream holds %d", residualBytes, got)
	}
	for _, fs := range m.Filesystems {
		for _, f := range fs.Files {
			var used int64
			for _, x := range f.Extents {
				if x.Len <= 0 || x.DiskOff < 0 || x.DiskOff+x.Len > m.DiskSize || x.FileOff < 0 || uint64(x.FileOff+x.Len) > f.Size {
					return fmt.Errorf("manifest: inode %d extent file %d disk %d len %d outside file or disk", f.Ino, x.FileOff, x.DiskOff, x.Len)
				}
				spans = append(spans, span{x.DiskOff, x.Len})
				used += x.Len
			}
			if len(f.Extents) > 0 && used != StreamSize(f.Content) {
				return fmt.Errorf("manifest: inode %d extents place %d bytes but its content holds %d", f.Ino, used, StreamSize(f.Content))
			}
		}
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].off < spans[j].off })
	var pos int64
	for _, s := range spans {
		if s.off != pos {
			if s.off < pos {
				return fmt.Errorf("manifest: disk byte %d is described twice", s.off)
			}
			return fmt.Errorf("manifest: disk bytes [%d,%d) are not described", pos, s.off)
		}
		pos = s.off + s.len
	}
	if pos != m.DiskSize {
		return fmt.Errorf("manifest: disk bytes [%d,%d) are not described", pos, m.DiskSize)
	}
	return nil
}

// IDs returns the distinct chunk IDs the manifest references.
func (m *Manifest) IDs() []chunker.ID {
	seen := make(map[chunker.ID]struct{})
	var ids []chunker.ID
	_ = m.ForEachRef(func(r Ref) error {
		if _, ok := seen[r.ID]; !ok {
			seen[r.ID] = struct{}{}
			ids = append(ids, r.ID)
		}
		return nil
	})
	return ids
}
