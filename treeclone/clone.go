package treeclone

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"time"

	"mis/internal/durable"
	"mis/internal/repodir"
)

// FormatVersion is the version of clone.json. Get refuses other versions.
const FormatVersion = 1

// Clone is the record of one tree clone (REPO/treeclones/NAME/clone.json).
type Clone struct {
	FormatVersion int       `json:"format_version"`
	Name          string    `json:"name"`
	Base          string    `json:"base"` // version id of the read-only lower
	Created       time.Time `json:"created"`
}

// Dirs are the places of one clone inside the repository.
type Dirs struct {
	Root  string // REPO/treeclones/NAME
	Upper string // Upper/pN: each filesystem's overlay upperdir (the clone's edits)
	Work  string // Work/pN: overlay workdirs (same filesystem as Upper)
	Lower string // where the base version is served with FUSE while mounted
	Lock  string // flock held while mounted or committing
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ErrNotFound is returned for a clone name that does not exist.
var ErrNotFound = errors.New("no such tree clone")

// ErrMounted is returned when an operation needs the clone unmounted.
var ErrMounted = errors.New("tree clone is mounted")

// CheckName validates a clone name: it becomes a directory name.
func CheckName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("invalid tree clone name %q: use 1-64 of a-z 0-9 . _ - starting with a letter or digit", name)
	}
	return nil
}

// Paths returns the directories of clone name in the repository at repoDir.
func Paths(repoDir, name string) Dirs {
	root := repodir.Dir(repoDir).TreeClone(name)
	return Dirs{
		Root:  root,
		Upper: filepath.Join(root, "upper"),
		Work:  filepath.Join(root, "work"),
		Lower: filepath.Join(root, "lower"),
		Lock:  filepath.Join(root, "lock"),
	}
}

func recordPath(repoDir, name string) string {
	return filepath.Join(Paths(repoDir, name).Root, "clone.json")
}

// Create records a new clone of version baseVersionID. It copies nothing:
// the upper directories are made on first mount. The caller resolves
// NAME:TAG to the version id (and so checks it exists).
func Create(repoDir, name, baseVersionID string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if baseVersionID == "" {
		return errors.New("tree clone: empty base version id")
	}
	parent := repodir.Dir(repoDir).TreeClones()
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return err
	}
	root := Paths(repoDir, name).Root
	// Mkdir is the atomic "name is free" test.
	if err := os.Mkdir(root, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("tree clone %q already exists", name)
		}
		return err
	}
	c := &Clone{FormatVersion: FormatVersion, Name: name, Base: baseVersionID, Created: time.Now().UTC()}
	if err := writeRecord(repoDir, c); err != nil {
		os.RemoveAll(root)
		return err
	}
	return durable.SyncDir(parent)
}

func writeRecord(repoDir string, c *Clone) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return durable.WriteFile(recordPath(repoDir, c.Name), append(data, '\n'), 0o600)
}

// Get reads the record of clone name.
func Get(repoDir, name string) (*Clone, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	p := recordPath(repoDir, name)
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var c Clone
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("%s: corrupt record: %w", p, err)
	}
	if c.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("%s: format version %d is not supported (this mis reads %d)", p, c.FormatVersion, FormatVersion)
	}
	if c.Name != name || c.Base == "" {
		return nil, fmt.Errorf("%s: record names clone %q with base %q", p, c.Name, c.Base)
	}
	return &c, nil
}

// List returns every clone of the repository, sorted by name.
func List(repoDir string) ([]*Clone, error) {
	ents, err := os.ReadDir(repodir.Dir(repoDir).TreeClones())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Clone
	for _, e := range ents {
		if !e.IsDir() || CheckName(e.Name()) != nil {
			continue
		}
		c, err := Get(repoDir, e.Name())
		if errors.Is(err, ErrNotFound) {
			continue // a Create that died before its record: not a clone
		}
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Remove deletes clone name and its edits. It refuses while the clone is
// mounted (its lock is held, or an overlay still uses its upper).
func Remove(repoDir, name string) error {
	if _, err := Get(repoDir, name); err != nil {
		return err
	}
	d := Paths(repoDir, name)
	unlock, err := lockClone(d, "remove")
	if err != nil {
		return err
	}
	defer unlock()
	if err := checkNoMounts(d); err != nil {
		return err
	}
	// Rename first so a crash half-way leaves no half-removed clone under
	// its name; List skips the leftover (not a valid name).
	trash := filepath.Join(filepath.Dir(d.Root), ".removing-"+name+"-"+fmt.Sprint(time.Now().UnixNano()))
	if err := os.Rename(d.Root, trash); err != nil {
		return err
	}
	if err := durable.SyncDir(filepath.Dir(d.Root)); err != nil {
		return err
	}
	return os.RemoveAll(trash)
}

// Rebase points clone name at a new base version and drops its edits: what
// a caller does after committing the clone, to keep editing on top of the
// committed version. Refused while mounted.
func Rebase(repoDir, name, newBaseVersionID string) error {
	c, err := Get(repoDir, name)
	if err != nil {
		return err
	}
	d := Paths(repoDir, name)
	unlock, err := lockClone(d, "rebase")
	if err != nil {
		return err
	}
	defer unlock()
	if err := checkNoMounts(d); err != nil {
		return err
	}
	// Move the edits aside, record the new base, then delete them; if the
	// record cannot be written the edits go back.
	stamp := fmt.Sprint(time.Now().UnixNano())
	moved := map[string]string{}
	restore := func() {
		for dir, old := range moved {
			os.Rename(old, dir)
		}
	}
	for _, dir := range []string{d.Upper, d.Work} {
		old := dir + ".old-" + stamp
		if err := os.Rename(dir, old); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			restore()
			return err
		}
		moved[dir] = old
	}
	c.Base = newBaseVersionID
	if err := writeRecord(repoDir, c); err != nil {
		restore()
		return err
	}
	for _, old := range moved {
		if err := os.RemoveAll(old); err != nil {
			return err
		}
	}
	return nil
}
