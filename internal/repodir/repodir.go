// Package repodir names every path inside a repository directory. It is the
// one place that knows the tree; repo, clone, treeclone and catalog ask it
// instead of joining names of their own, so a new kind of record (mount
// records, remote sessions) gets its place here, beside the others.
//
//	REPO/config.json                  repository config (repo; written once by Init)
//	REPO/lock                         the writer lock and its holder (repo)
//	REPO/meta/                        Badger: chunk index and metadata (repo)
//	REPO/packs/ab/<64 hex>.pack       immutable packs (repo, through its PackStore)
//	REPO/packs/tmp/                   packs being written (repo)
//	REPO/clones/lock                  the names lock: clone and image names, clone records (catalog, clone)
//	REPO/clones/clones.json           every disk clone's record (clone)
//	REPO/clones/deltas/<id>.delta     a disk clone delta's data, with <id>.map beside it (clone)
//	REPO/treeclones/NAME/             a tree clone: clone.json, lock, upper/, work/, lower/ (treeclone)
//	REPO/versions/<id>.json           every version record again, for repair (layer)
//	REPO/damaged/                     damaged packs and metadata moved aside by verify --repair (repo)
//	REPO/mounts/<id>.json             a running mount of a version and its flock (catalog)
//	REPO/mounts/<dir>-<hash>.log      the log of mis mount --daemon serving <dir> (cmd/mis)
package repodir

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
)

// Dir is the root directory of a repository.
type Dir string

func (d Dir) join(elem ...string) string {
	return filepath.Join(append([]string{string(d)}, elem...)...)
}

// Root is the repository directory itself.
func (d Dir) Root() string { return string(d) }

// Config is the repository's config file; its presence makes Root a repository.
func (d Dir) Config() string { return d.join("config.json") }

// WriterLock is the file whose flock is the writer lock.
func (d Dir) WriterLock() string { return d.join("lock") }

// Meta is Badger's directory.
func (d Dir) Meta() string { return d.join("meta") }

// Packs is the local pack store's directory.
func (d Dir) Packs() string { return d.join("packs") }

// Clones is the disk clones' directory.
func (d Dir) Clones() string { return d.join("clones") }

// NamesLock is the file whose flock orders everything that creates or
// removes a name (clones, tree clones, the first tag of an image) and
// everything that must see clone records stand still (rm of a version).
func (d Dir) NamesLock() string { return d.join("clones", "lock") }

// CloneRecords is the file holding every disk clone's record.
func (d Dir) CloneRecords() string { return d.join("clones", "clones.json") }

// Deltas is where disk clones' deltas live.
func (d Dir) Deltas() string { return d.join("clones", "deltas") }

// TreeClones is the tree clones' directory.
func (d Dir) TreeClones() string { return d.join("treeclones") }

// TreeClone is one tree clone's directory.
func (d Dir) TreeClone(name string) string { return d.join("treeclones", name) }

// Mounts is where running mounts of versions leave their records.
func (d Dir) Mounts() string { return d.join("mounts") }

// MountLog is the default log of a background mount at dir: inside the
// repository, where no other user can plant a file or a link.
func (d Dir) MountLog(dir string) string {
	sum := sha256.Sum256([]byte(dir))
	return d.join("mounts", filepath.Base(dir)+"-"+hex.EncodeToString(sum[:4])+".log")
}
