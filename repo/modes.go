package repo

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// File modes. A repository is private to its owner, as restic's are: the
// repository directory and every directory in it are 0700, every file
// 0600. Disk images hold whole systems (keys, password hashes, user data),
// so nobody else on the machine should read a pack, the index or a clone's
// delta, nor learn image names from the metadata.
//
// Everything mis creates itself is created with these modes. Badger
// creates its files with 0666 &^ umask (tables, value logs, memtables,
// DISCARD, its LOCK) and offers no option to change that; a process-wide
// umask around Badger's opens would race with other goroutines creating
// files (an export's output, a mount's log). So the meta directory is
// 0700 from the start, which keeps others out of any file inside it at
// once, and the files' own modes are set to 0600 after every read-write
// session opens and after it closes (Badger creates files only in
// read-write sessions). Repositories made before this policy are fixed by
// their next writer: OpenWriter walks the parts of the repository repo
// owns when the repository directory's mode is not yet 0700 (the walk sets
// it last, so a finished walk is never repeated). A process that may not
// chmod (not the owner of a repository shared through group permissions)
// warns once and goes on: modes never make a command fail.
const (
	DirMode  fs.FileMode = 0o700
	FileMode fs.FileMode = 0o600
)

// repoOwnedEntries are the entries of a repository directory that repo
// (and layer, through record files) create. Clone, tree clone and mount
// records (catalog, clone, treeclone) have always been created private;
// a tree clone's upper directory holds the guest's own modes, which are
// content and must not change.
var repoOwnedEntries = []string{configName, configName + ".tmp", lockName, metaDir, packsDir, damagedDir, recordsDirs[0]}

// fixModes makes path and everything under it private: directories
// DirMode, regular files FileMode. Symbolic links are not followed.
// Entries that vanish meanwhile are skipped.
func fixModes(path string) error {
	err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		var want fs.FileMode
		switch {
		case d.IsDir():
			want = DirMode
		case d.Type().IsRegular():
			want = FileMode
		default:
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if info.Mode().Perm() == want && info.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) == 0 {
			return nil
		}
		if err := os.Chmod(p, want); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// fixRepoModes applies the policy to the repository if it was made before
// the policy (its directory is not 0700): every entry repo owns, then the
// directory itself, last. A failure (a writer that does not own the
// repository may not chmod) is a warning, not the writer's failure.
func (r *Repo) fixRepoModes() {
	st, err := os.Stat(r.dir)
	if err != nil || st.Mode().Perm() == DirMode {
		return
	}
	for _, name := range repoOwnedEntries {
		if err := fixModes(filepath.Join(r.dir, name)); err != nil {
			warnModes(err)
			return
		}
	}
	if err := os.Chmod(r.dir, DirMode); err != nil {
		warnModes(err)
	}
}

var modesWarned sync.Once

func warnModes(err error) {
	modesWarned.Do(func() { warnf("cannot make the repository private (directories 0700, files 0600): %v", err) })
}

// fixMetaModes makes the files Badger created in the metadata directory
// private (see the policy above). Cheap: one directory listing. Failures
// are warned about once.
func fixMetaModes(dir string) {
	if err := fixMetaModesErr(dir); err != nil {
		warnModes(err)
	}
}

func fixMetaModesErr(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		if info.Mode().Perm() != FileMode {
			if err := os.Chmod(filepath.Join(dir, e.Name()), FileMode); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}
