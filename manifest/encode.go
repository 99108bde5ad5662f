package manifest

import (
	"bytes"
	"cmp"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"slices"

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

// Encode serialises m in the binary format (FormatVersion). The output is
// deterministic: equal manifests give equal bytes. m.FormatVersion is not
// consulted: the header carries the version.
func Encode(m *Manifest) ([]byte, error) {
	e := encoder{b: make([]byte, 0, estimateSize(m))}
	e.b = append(e.b, manifestMagic...)
	e.uvarint(FormatVersion)
	e.manifest(m)
	return e.b, nil
}

// estimateSize guesses the encoded size so Encode allocates about once.
func estimateSize(m *Manifest) int {
	n := 1024 + len(m.Layout.Detail) + 40*len(m.ResidualData) + 12*len(m.Residual)
	for i := range m.Filesystems {
		n += 1200 + len(m.Filesystems[i].Super) + entriesSize(m.Filesystems[i].Files)
	}
	return n
}

// entriesSize is an upper estimate of the entries' encoded size (paths are
// counted whole, before prefix sharing).
func entriesSize(files []Entry) int {
	n := 0
	for i := range files {
		f := &files[i]
		n += 64 + len(f.Symlink) + 37*len(f.Content) + 24*len(f.Extents)
		for _, p := range f.Paths {
			n += 4 + len(p)
		}
		for _, x := range f.Xattrs {
			n += 8 + len(x.Name) + len(x.Value)
		}
	}
	return n
}

// Decode parses a manifest written by Encode (or the JSON of format
// version 1) and checks its structure.
func Decode(r io.Reader) (*Manifest, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return DecodeBytes(b)
}

// DecodeBytes is Decode for a manifest already in memory. The manifest may
// share b's memory (byte strings are not copied): do not modify b after.
func DecodeBytes(b []byte) (*Manifest, error) {
	m, l, err := DecodeStream(b)
	if err != nil {
		return nil, err
	}
	if l != nil {
		return nil, fmt.Errorf("manifest: this is a layer (the changes against a base version), not a whole manifest")
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// DecodeStream decodes what a version stores: either a whole manifest
// (binary or the JSON of format version 1) or a layer. Exactly one of the
// results is non-nil on success. A whole manifest is not validated here:
// a reader resolving a chain of layers validates the result once.
func DecodeStream(b []byte) (*Manifest, *Layer, error) {
	switch {
	case bytes.HasPrefix(b, []byte(manifestMagic)):
		d := newDecoder(b, len(manifestMagic))
		if v := d.uvarint(); d.err == nil && v != FormatVersion {
			return nil, nil, fmt.Errorf("manifest format version %d is not supported (this mis reads %d and %d)", v, jsonFormatVersion, FormatVersion)
		}
		m := d.manifest()
		if err := d.finish(); err != nil {
			return nil, nil, fmt.Errorf("manifest: %w", err)
		}
		return m, nil, nil
	case bytes.HasPrefix(b, []byte(layerMagic)):
		l, err := decodeLayer(b)
		if err != nil {
			return nil, nil, err
		}
		return nil, l, nil
	case len(bytes.TrimLeft(b, " \t\r\n")) > 0 && bytes.TrimLeft(b, " \t\r\n")[0] == '{':
		m, err := decodeJSON(b)
		return m, nil, err
	}
	head := b[:min(len(b), 8)]
	return nil, nil, fmt.Errorf("manifest: unknown header %q: neither a manifest nor a layer", head)
}

// decodeJSON reads format version 1, the JSON document mis wrote before
// the binary format. In memory it becomes the current version.
func decodeJSON(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if m.FormatVersion != jsonFormatVersion {
		return nil, fmt.Errorf("manifest format version %d is not supported (this mis reads %d and %d)", m.FormatVersion, jsonFormatVersion, FormatVersion)
	}
	m.FormatVersion = FormatVersion
	return &m, nil
}

// EncodeJSON writes the JSON of format version 1. mis no longer stores it;
// it is kept for tests that prove old repositories still load, and for
// humans who want to read a manifest.
func EncodeJSON(m *Manifest) ([]byte, error) {
	c := *m
	c.FormatVersion = jsonFormatVersion
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(&c); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func newDecoder(b []byte, off int) *decoder {
	return &decoder{b: b, off: off, intern: map[string]string{}, pathBudget: pathBudget(len(b))}
}

// pathBudget bounds the bytes of paths an input of n bytes may decode to.
// A path shares a prefix with the one before it, so a few bytes can stand
// for a long path: without a bound 140 KB decoded to 1.25 GiB. 256 times
// the input covers real trees (a 4000-byte-deep directory of one-letter
// names costs about 21 input bytes per file: 190 times).
func pathBudget(n int) int64 { return 16<<20 + 256*int64(n) }

// finish reports the first error, or trailing bytes nobody wrote.
func (d *decoder) finish() error {
	if d.err == nil && d.off != len(d.b) {
		d.fail("%d unexpected bytes after the end", len(d.b)-d.off)
	}
	return d.err
}

// Validate checks the invariants export relies on: residual runs and file
// extents lie inside the disk, do not overlap, and together cover it; the
// residual data stream holds exactly the non-zero runs' bytes; each file's
// extents consume exactly its content stream.
func (m *Manifest) Validate() error {
	type span struct{ off, len int64 }
	n := len(m.Residual)
	for i := range m.Filesystems {
		for j := range m.Filesystems[i].Files {
			n += len(m.Filesystems[i].Files[j].Extents)
		}
	}
	spans := make([]span, 0, n)
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
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.off, b.off) })
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
