// Package layer keeps the versions of images: named references NAME:TAG,
// the version records they point to, and each version's manifest, stored
// as a chunk stream in the repository.
//
// Metadata keys (in the repository's Badger database):
//
//	ver/<version id>           -> Version, JSON
//	tag/<name> 0x00 <tag>      -> version id
//
// A version becomes visible in the same transaction that writes its record
// and tag, after every chunk it uses is durable (repo.Writer.Commit).
package layer

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"mis/manifest"
	"mis/repo"
)

// Version is the record of one stored image version.
type Version struct {
	ID       string         `json:"id"`
	Name     string         `json:"name"` // the name and tag it was created as
	Tag      string         `json:"tag"`
	Parent   string         `json:"parent,omitempty"` // version id
	Created  time.Time      `json:"created"`
	Source   string         `json:"source,omitempty"` // imported file, for humans
	Exact    bool           `json:"exact"`
	DiskSize int64          `json:"disk_size"`
	Files    int            `json:"files"`
	Manifest []manifest.Ref `json:"manifest"`
	// Added counts what this version's import added to the repository.
	AddedChunks int64 `json:"added_chunks"`
	AddedRaw    int64 `json:"added_raw"`
	AddedStored int64 `json:"added_stored"`
}

// Ref names a version as NAME:TAG.
type Ref struct {
	Name, Tag string
}

func (r Ref) String() string { return r.Name + ":" + r.Tag }

var (
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._/-]{0,127}$`)
	tagRE  = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)
)

// ErrNotFound is returned when a NAME:TAG does not exist.
var ErrNotFound = errors.New("no such version")

// ParseRef parses NAME:TAG. A missing tag means "latest", as with container
// images, so `mis export debian out.raw` does what a user expects.
func ParseRef(s string) (Ref, error) {
	name, tag := s, "latest"
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		name, tag = s[:i], s[i+1:]
	}
	if !nameRE.MatchString(name) {
		return Ref{}, fmt.Errorf("invalid image name %q: use lowercase letters, digits and . _ - /", name)
	}
	if !tagRE.MatchString(tag) {
		return Ref{}, fmt.Errorf("invalid tag %q in %q: use letters, digits and . _ -", tag, s)
	}
	return Ref{name, tag}, nil
}

func versionKey(id string) []byte { return []byte("ver/" + id) }
func tagKey(r Ref) []byte         { return []byte("tag/" + r.Name + "\x00" + r.Tag) }

// NewID returns a fresh random version id.
func NewID() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b[:])
}

// Resolve returns the version NAME:TAG points to.
func Resolve(tx *repo.Tx, r Ref) (*Version, error) {
	id, err := tx.Get(tagKey(r))
	if errors.Is(err, repo.ErrNotFound) {
		return nil, fmt.Errorf("%s: %w", r, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return Get(tx, string(id))
}

// Get returns a version by id.
func Get(tx *repo.Tx, id string) (*Version, error) {
	raw, err := tx.Get(versionKey(id))
	if err != nil {
		return nil, fmt.Errorf("version %s: %w", id, err)
	}
	var v Version
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("version %s: corrupt record: %w", id, err)
	}
	return &v, nil
}

// Tagged is a name:tag with the version it points to.
type Tagged struct {
	Ref     Ref
	Version *Version
}

// List returns every NAME:TAG, sorted by name then creation time.
func List(tx *repo.Tx) ([]Tagged, error) {
	var out []Tagged
	err := tx.Iterate([]byte("tag/"), func(key, val []byte) error {
		nt := bytes.SplitN(key[len("tag/"):], []byte{0}, 2)
		if len(nt) != 2 {
			return fmt.Errorf("corrupt tag key %q", key)
		}
		v, err := Get(tx, string(val))
		if err != nil {
			return err
		}
		out = append(out, Tagged{Ref{string(nt[0]), string(nt[1])}, v})
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Ref.Name != out[j].Ref.Name {
			return out[i].Ref.Name < out[j].Ref.Name
		}
		return out[i].Version.Created.Before(out[j].Version.Created)
	})
	return out, err
}

// Versions returns every version record, tagged or not.
func Versions(tx *repo.Tx) ([]*Version, error) {
	var out []*Version
	err := tx.Iterate([]byte("ver/"), func(key, val []byte) error {
		var v Version
		if err := json.Unmarshal(val, &v); err != nil {
			return fmt.Errorf("version %s: corrupt record: %w", key[4:], err)
		}
		out = append(out, &v)
		return nil
	})
	return out, err
}

// Save stores m as a new version named r: it writes the manifest's chunks,
// then in one commit makes the record and its tag visible. The tag must not
// exist yet.
func Save(ctx context.Context, w *repo.Writer, r Ref, v *Version, m *manifest.Manifest) error {
	// Fail before writing anything if the name is taken; checked again in
	// the commit transaction, which is what counts.
	if err := w.View(ctx, func(tx *repo.Tx) error { return checkFree(tx, r) }); err != nil {
		return err
	}
	enc, err := manifest.Encode(m)
	if err != nil {
		return err
	}
	refs, err := w.WriteStream(bytes.NewReader(enc), nil)
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
	return w.Commit(ctx, func(tx *repo.Tx) error {
		if err := checkFree(tx, r); err != nil {
			return err
		}
		rec, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if err := tx.Put(versionKey(v.ID), rec); err != nil {
			return err
		}
		return tx.Put(tagKey(r), []byte(v.ID))
	})
}

func checkFree(tx *repo.Tx, r Ref) error {
	_, err := tx.Get(tagKey(r))
	if err == nil {
		return fmt.Errorf("%s already exists: choose another tag or remove it first with mis rm", r)
	}
	if errors.Is(err, repo.ErrNotFound) {
		return nil
	}
	return err
}

func toManifestRefs(refs []repo.Ref) []manifest.Ref {
	out := make([]manifest.Ref, len(refs))
	for i, r := range refs {
		out[i] = manifest.Ref{ID: r.ID, Size: r.Size}
	}
	return out
}

// Latest returns the most recently created version tagged under name, or
// ErrNotFound. It is the default parent of a new import of name.
func Latest(tx *repo.Tx, name string) (*Version, error) {
	tags, err := List(tx)
	if err != nil {
		return nil, err
	}
	var best *Version
	for _, t := range tags {
		if t.Ref.Name == name && (best == nil || t.Version.Created.After(best.Created)) {
			best = t.Version
		}
	}
	if best == nil {
		return nil, fmt.Errorf("%s: %w", name, ErrNotFound)
	}
	return best, nil
}
