// Package layer keeps the versions of images: named references NAME:TAG,
// the version records they point to, and each version's manifest, stored
// as a chunk stream in the repository.
//
// A version with a parent stores a layer: only what its manifest changes
// against the parent's (manifest.Diff). Its record names the version the
// layer applies to (Base) and how many layers lie between it and the
// nearest whole manifest (Depth). Reading a version resolves that chain:
// the whole manifest at its bottom, then each layer applied upward. A
// version is stored whole (a checkpoint) when its chain would grow past
// MaxDepth layers or when the chain's layers would add up to more bytes
// than the whole manifest, so a read never costs more than about two
// whole manifests and MaxDepth small applies. Removing a version rebases
// the layers of the versions built on it in the same commit.
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
	ID      string    `json:"id"`
	Name    string    `json:"name"` // the name and tag it was created as
	Tag     string    `json:"tag"`
	Parent  string    `json:"parent,omitempty"` // version id
	Created time.Time `json:"created"`
	Source  string    `json:"source,omitempty"` // imported file, for humans
	Exact   bool      `json:"exact"`
	// TreeEdited marks a version committed from a tree clone: its files
	// were edited as a tree, so its residual data no longer describes them
	// and only a fresh export (new filesystems) writes it out.
	TreeEdited bool `json:"tree_edited,omitempty"`
	// Unverified marks a version imported with --trust-metadata: files
	// whose inodes looked unchanged took the parent's chunks without being
	// read, so nothing proves that it exports to the imported image.
	Unverified bool  `json:"unverified,omitempty"`
	DiskSize   int64 `json:"disk_size"`
	Files      int   `json:"files"`
	// Manifest is the chunk stream of what this version stores: a whole
	// manifest when Base is empty, else a layer against Base's manifest.
	Manifest []manifest.Ref `json:"manifest"`
	// Base is the version whose resolved manifest the stored layer
	// applies to (usually the parent; after a rm, the removed version's
	// base). Empty: Manifest is whole.
	Base string `json:"base,omitempty"`
	// Depth counts the layers from the nearest whole manifest up to this
	// version (0: stored whole).
	Depth int `json:"depth,omitempty"`
	// Sum is the BLAKE3 of the resolved manifest's encoding (hex), so a
	// resolved chain can be checked (verify does) and a parent manifest
	// handed to Save can be trusted. Empty in versions older than layers.
	Sum string `json:"sum,omitempty"`
	// Added counts what this version's import added to the repository.
	AddedChunks int64 `json:"added_chunks"`
	AddedRaw    int64 `json:"added_raw"`
	AddedStored int64 `json:"added_stored"`
}

// Exactness says in a few words whether the version exports identical to
// what it was made from, and if not, why.
func (v *Version) Exactness() string {
	switch {
	case v.TreeEdited:
		return "no (tree edits: export --fresh)"
	case !v.Exact:
		return "no (free space discarded)"
	case v.Unverified:
		return "unverified (--trust-metadata: files reused unread)"
	}
	return "yes"
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
