package clone

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"time"

	"golang.org/x/sys/unix"

	"mis/internal/durable"
	"mis/internal/repodir"
)

// FormatVersion is the version of clones.json and the delta files.
const FormatVersion = 1

// Clone is the record of one clone.
type Clone struct {
	Name     string `json:"name"`
	Base     string `json:"base"`     // version id of the base
	BaseRef  string `json:"base_ref"` // NAME:TAG the base was known as at creation
	DiskSize int64  `json:"disk_size"`
	Active   string `json:"active"` // id of the delta this clone writes to
	// Frozen are read-only deltas below Active, newest first, shared with
	// the clones made from this one (or from which this one was made).
	Frozen  []string  `json:"frozen,omitempty"`
	Origin  string    `json:"origin,omitempty"` // clone this one was cloned from
	Created time.Time `json:"created"`
}

type recordsFile struct {
	FormatVersion int      `json:"format_version"`
	Clones        []*Clone `json:"clones"`
}

// ErrNotFound is returned for a clone name that does not exist.
var ErrNotFound = errors.New("no such clone")

// ErrMounted is returned when a clone is in use by a mount (or a commit).
var ErrMounted = errors.New("clone is mounted")

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,127}$`)

// ValidName checks a clone name: lowercase letters, digits and . _ -,
// starting with a letter or digit (no ':' or '/', so it never reads as
// NAME:TAG).
func ValidName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("invalid clone name %q: use lowercase letters, digits and . _ - (starting with a letter or digit, at most 128)", name)
	}
	return nil
}

// Store is the clones of one repository.
type Store struct {
	dir repodir.Dir
}

// Open returns the clone store of the repository at repoDir. Nothing is
// created until the first clone is.
func Open(repoDir string) *Store { return &Store{dir: repodir.Dir(repoDir)} }

func (s *Store) recordsPath() string { return s.dir.CloneRecords() }
func (s *Store) deltaDir() string    { return s.dir.Deltas() }
func (s *Store) deltaPath(id string) string {
	return filepath.Join(s.deltaDir(), id+".delta")
}
func (s *Store) mapPath(id string) string { return filepath.Join(s.deltaDir(), id+".map") }

// Locked runs fn holding the repository's names lock: no clone is
// created, frozen or removed meanwhile, and no other name is taken. The
// lock waits for other holders (all hold it briefly).
func (s *Store) Locked(fn func() error) error {
	if err := os.MkdirAll(s.deltaDir(), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(s.dir.NamesLock(), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return fn()
}

// load reads every record; a missing file means no clones.
func (s *Store) load() ([]*Clone, error) {
	data, err := os.ReadFile(s.recordsPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rf recordsFile
	if err := json.Unmarshal(data, &rf); err != nil {
		return nil, fmt.Errorf("%s: corrupt: %w", s.recordsPath(), err)
	}
	if rf.FormatVersion > FormatVersion {
		return nil, fmt.Errorf("%s: format version %d is newer than this mis understands (%d)", s.recordsPath(), rf.FormatVersion, FormatVersion)
	}
	return rf.Clones, nil
}

// save replaces the records durably: a crash leaves the old or the new file.
func (s *Store) save(clones []*Clone) error {
	sort.Slice(clones, func(i, j int) bool { return clones[i].Name < clones[j].Name })
	data, err := json.Marshal(recordsFile{FormatVersion: FormatVersion, Clones: clones})
	if err != nil {
		return err
	}
	return durable.WriteFile(s.recordsPath(), data, 0o600)
}

// List returns every clone, sorted by name.
func (s *Store) List() ([]Clone, error) {
	recs, err := s.load()
	out := make([]Clone, 0, len(recs))
	for _, c := range recs {
		out = append(out, *c)
	}
	return out, err
}

// Get returns one clone's record.
func (s *Store) Get(name string) (*Clone, error) {
	recs, err := s.load()
	if err != nil {
		return nil, err
	}
	if c := find(recs, name); c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("clone %s: %w", name, ErrNotFound)
}

// Exists reports whether a clone of that name exists (false on errors).
func (s *Store) Exists(name string) bool {
	_, err := s.Get(name)
	return err == nil
}

func find(recs []*Clone, name string) *Clone {
	for _, c := range recs {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Base says what new clones start from: a stored version.
type Base struct {
	VersionID string
	Ref       string // NAME:TAG, for display
	DiskSize  int64
}

// CreateOptions are the checks a caller runs while the store is locked.
type CreateOptions struct {
	// Check, if set, runs under the lock before anything is written: the
	// caller verifies the base version still exists and that no image is
	// named like a new clone. Its error aborts the creation.
	Check func(names []string) error
}

func newDeltaID() string {
	var b [10]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func checkNewNames(recs []*Clone, names []string) error {
	if len(names) == 0 {
		return errors.New("no clone name given")
	}
	seen := map[string]bool{}
	for _, n := range names {
		if err := ValidName(n); err != nil {
			return err
		}
		if seen[n] {
			return fmt.Errorf("clone name %s is given twice", n)
		}
		seen[n] = true
		if find(recs, n) != nil {
			return fmt.Errorf("clone %s already exists: choose another name or remove it first with mis rm %s", n, n)
		}
	}
	return nil
}

// Create makes clones of a version. It writes one record per clone and
// nothing else: deltas appear on first mount.
func (s *Store) Create(base Base, names []string, opt CreateOptions) ([]Clone, error) {
	var out []Clone
	err := s.Locked(func() error {
		recs, err := s.load()
		if err != nil {
			return err
		}
		if err := checkNewNames(recs, names); err != nil {
			return err
		}
		if opt.Check != nil {
			if err := opt.Check(names); err != nil {
				return err
			}
		}
		now := time.Now().UTC()
		for _, n := range names {
			c := &Clone{Name: n, Base: base.VersionID, BaseRef: base.Ref, DiskSize: base.DiskSize, Active: newDeltaID(), Created: now}
			recs = append(recs, c)
			out = append(out, *c)
		}
		return s.save(recs)
	})
	return out, err
}

// CreateFromClone makes clones of clone src. src's active delta is frozen
// into a read-only layer under src and the new clones, and each gets a new
// empty active delta. src must not be mounted.
func (s *Store) CreateFromClone(src string, names []string, opt CreateOptions) ([]Clone, error) {
	var out []Clone
	err := s.Locked(func() error {
		recs, err := s.load()
		if err != nil {
			return err
		}
		sc := find(recs, src)
		if sc == nil {
			return fmt.Errorf("clone %s: %w", src, ErrNotFound)
		}
		if err := checkNewNames(recs, names); err != nil {
			return err
		}
		if opt.Check != nil {
			if err := opt.Check(names); err != nil {
				return err
			}
		}
		if err := s.checkNotInUse(sc); err != nil {
			return err
		}
		// An active delta that was never mounted holds nothing: no layer.
		frozen := sc.Frozen
		if _, err := os.Stat(s.deltaPath(sc.Active)); err == nil {
			frozen = append([]string{sc.Active}, sc.Frozen...)
		}
		sc.Frozen = frozen
		sc.Active = newDeltaID()
		now := time.Now().UTC()
		for _, n := range names {
			c := &Clone{Name: n, Base: sc.Base, BaseRef: sc.BaseRef, DiskSize: sc.DiskSize, Active: newDeltaID(),
				Frozen: append([]string(nil), frozen...), Origin: src, Created: now}
			recs = append(recs, c)
			out = append(out, *c)
		}
		return s.save(recs)
	})
	return out, err
}

// checkNotInUse fails with ErrMounted when a process holds c's active
// delta (a mount, or a commit reading it). Call it under the store lock.
func (s *Store) checkNotInUse(c *Clone) error {
	f, err := os.Open(s.deltaPath(c.Active))
	if errors.Is(err, os.ErrNotExist) {
		return nil // never mounted; a mount creates it under the store lock
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fmt.Errorf("clone %s: %w", c.Name, ErrMounted)
	}
	return nil
}

// Remove deletes clone name: its record, its active delta, and every
// frozen delta no other clone uses. It refuses while the clone is mounted.
func (s *Store) Remove(name string) error {
	return s.Locked(func() error {
		recs, err := s.load()
		if err != nil {
			return err
		}
		c := find(recs, name)
		if c == nil {
			return fmt.Errorf("clone %s: %w", name, ErrNotFound)
		}
		if err := s.checkNotInUse(c); err != nil {
			return err
		}
		kept := recs[:0]
		used := map[string]bool{}
		for _, o := range recs {
			if o.Name == name {
				continue
			}
			kept = append(kept, o)
			for _, id := range o.Frozen {
				used[id] = true
			}
		}
		if err := s.save(kept); err != nil {
			return err
		}
		// The record is gone: its deltas are garbage now, whatever happens.
		for _, id := range append([]string{c.Active}, c.Frozen...) {
			if !used[id] {
				os.Remove(s.deltaPath(id))
				os.Remove(s.mapPath(id))
			}
		}
		return nil
	})
}

// UsersOf returns the names of the clones whose base is version id.
func (s *Store) UsersOf(versionID string) ([]string, error) {
	recs, err := s.load()
	var names []string
	for _, c := range recs {
		if c.Base == versionID {
			names = append(names, c.Name)
		}
	}
	return names, err
}

// BaseVersions returns the version ids clones of the repository at
// repoDir are based on, sorted, once each: these versions must stay (rm
// refuses them, gc keeps their chunks).
func BaseVersions(repoDir string) ([]string, error) {
	recs, err := Open(repoDir).load()
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, c := range recs {
		if !seen[c.Base] {
			seen[c.Base] = true
			out = append(out, c.Base)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Usage is the space a clone's deltas take on disk (allocated bytes).
type Usage struct {
	Delta  int64 `json:"delta_bytes"`  // the active delta and its map: this clone's own writes
	Frozen int64 `json:"frozen_bytes"` // frozen layers below it, shared with related clones
}

// Usage measures the allocated bytes of c's deltas.
func (s *Store) Usage(c *Clone) Usage {
	var u Usage
	u.Delta = allocated(s.deltaPath(c.Active)) + allocated(s.mapPath(c.Active))
	for _, id := range c.Frozen {
		u.Frozen += allocated(s.deltaPath(id)) + allocated(s.mapPath(id))
	}
	return u
}

func allocated(path string) int64 {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0
	}
	return st.Blocks * 512
}

// InUse reports whether clone c is open by a mount or a commit now.
func (s *Store) InUse(c *Clone) bool {
	return errors.Is(s.checkNotInUse(c), ErrMounted)
}
