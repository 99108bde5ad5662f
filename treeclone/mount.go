package treeclone

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"mis/internal/mountinfo"
	"mis/layer"
	"mis/manifest"
	"mis/mountfs"
	"mis/repo"
)

// MountOptions tunes a clone mount.
type MountOptions struct {
	// FS tunes the read-only FUSE serving of the base (cache, readahead).
	FS mountfs.Options
	// Debug logs every FUSE request of the lower.
	Debug bool
}

// Mounted is a mounted tree clone. Its FUSE lower is served by this
// process: the clone stays usable as long as the process lives.
type Mounted struct {
	Name  string
	Dir   string   // the user's directory: a small read-only tmpfs holding pN
	Parts []string // "p1", ... : one overlay each, DIR/pN
	Base  *layer.Version

	d      Dirs
	fs     *mountfs.FS
	srv    *fuse.Server
	unlock func()

	done     chan struct{} // closed once the FUSE lower has stopped and all is released
	release  sync.Once
	closeErr error
}

// overlayOptions are the overlayfs choices, each made so that the upper
// alone describes the edits and can be read back by Commit:
//   - metacopy=off: a chmod/chown/setfattr/utimes of a lower file copies the
//     whole file up, so every regular file in the upper holds its complete
//     data and Commit never needs the base's content (with metacopy=on the
//     upper would hold data-less files pointing into the lower);
//   - redirect_dir=off: renaming a lower directory fails with EXDEV and mv
//     falls back to copy + delete, so every upper directory stands for the
//     same path in the lower (no trusted.overlay.redirect to follow);
//   - index=off: no inode index (FUSE has no file handles to index by, and
//     the lower is a new FUSE instance at every mount). The price: writing
//     through one name of a lower hardlink copies it up alone and breaks
//     the link from the other names, as overlayfs documents.
const overlayOptions = "index=off,metacopy=off,redirect_dir=off"

// Mount serves the clone's base version read-only with FUSE at the clone's
// private lower directory and mounts, for each filesystem pN of the base,
// a kernel overlay at DIR/pN whose upper and work directories live in the
// repository. DIR must be an existing directory; it is covered by a small
// read-only tmpfs holding the pN mount points (so nothing is left in DIR
// after unmount). Root only (overlayfs and FUSE direct mounts).
//
// The mount lasts until Unmount, UnmountDir (from any process) or the
// death of this process (then the overlays stay behind over a dead lower
// and UnmountDir cleans them up).
func Mount(ctx context.Context, r *repo.Repo, name, dir string, opt MountOptions) (*Mounted, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("tree clone mounts need root (kernel overlayfs)")
	}
	c, err := Get(r.Dir(), name)
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(dir); err != nil {
		return nil, err
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	if ms, err := mountinfo.Read(); err != nil {
		return nil, err
	} else if isShell(ms, dir) {
		return nil, fmt.Errorf("%s: a tree clone is already mounted there", dir)
	}
	d := Paths(r.Dir(), name)
	unlock, err := lockClone(d, "mounted at "+dir)
	if err != nil {
		return nil, err
	}
	mt := &Mounted{Name: name, Dir: dir, d: d, unlock: unlock, done: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			mt.abort()
		}
	}()
	if err := checkNoMounts(d); err != nil {
		return nil, err
	}
	var m *manifest.Manifest
	if mt.Base, m, err = loadBase(ctx, r, c); err != nil {
		return nil, err
	}
	if len(m.Filesystems) == 0 {
		return nil, fmt.Errorf("tree clone %s: base version %s has no file tree to edit", name, c.Base)
	}
	if err := os.MkdirAll(d.Lower, 0o700); err != nil {
		return nil, err
	}
	if mt.fs, err = mountfs.New(ctx, r, m, opt.FS); err != nil {
		return nil, err
	}
	mt.srv, err = mt.fs.Mount(d.Lower, mountfs.MountOptions{FsName: "mis-clone-base:" + name, Debug: opt.Debug})
	if err != nil {
		mt.fs.Close()
		mt.fs = nil
		return nil, err
	}
	go func() {
		mt.srv.Wait()
		mt.finish()
	}()

	for _, f := range m.Filesystems {
		mt.Parts = append(mt.Parts, fmt.Sprintf("p%d", f.PartIndex))
	}
	if err := mountShell(dir, "mis-clone:"+name, mt.Parts); err != nil {
		return nil, err
	}
	for i := range m.Filesystems {
		if err := mt.mountOverlay(&m.Filesystems[i], mt.Parts[i]); err != nil {
			return nil, err
		}
	}
	ok = true
	return mt, nil
}

func loadBase(ctx context.Context, r *repo.Repo, c *Clone) (*layer.Version, *manifest.Manifest, error) {
	v, m, err := layer.LoadID(ctx, r, c.Base)
	if err != nil {
		return nil, nil, fmt.Errorf("tree clone %s: base: %w", c.Name, err)
	}
	return v, m, nil
}

// mountShell covers dir with a tiny tmpfs holding one directory per
// filesystem, then makes it read-only: a file written there would vanish
// at unmount.
func mountShell(dir, source string, parts []string) error {
	const flags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	if err := unix.Mount(source, dir, "tmpfs", flags, "size=64k,mode=0755"); err != nil {
		return fmt.Errorf("mount tmpfs at %s: %w", dir, err)
	}
	for _, p := range parts {
		if err := os.Mkdir(filepath.Join(dir, p), 0o755); err != nil {
			return err
		}
	}
	if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_RDONLY|flags, "size=64k,mode=0755"); err != nil {
		return fmt.Errorf("remount %s read-only: %w", dir, err)
	}
	return nil
}

// mountOverlay mounts DIR/pN over the FUSE tree of one filesystem.
func (mt *Mounted) mountOverlay(f *manifest.Filesystem, part string) error {
	upper := filepath.Join(mt.d.Upper, part)
	work := filepath.Join(mt.d.Work, part)
	if err := os.MkdirAll(mt.d.Upper, 0o700); err != nil {
		return err
	}
	if _, err := os.Lstat(upper); errors.Is(err, os.ErrNotExist) {
		if err := newUpperRoot(upper, f); err != nil {
			return fmt.Errorf("%s: %w", upper, err)
		}
	} else if err != nil {
		return err
	}
	if err := os.MkdirAll(work, 0o700); err != nil {
		return err
	}
	data := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s,%s",
		escapeOverlayPath(filepath.Join(mt.d.Lower, part)), escapeOverlayPath(upper), escapeOverlayPath(work), overlayOptions)
	target := filepath.Join(mt.Dir, part)
	// nosuid, nodev: the tree is a VM's, not the host's.
	if err := unix.Mount("mis-clone:"+mt.Name, target, "overlay", unix.MS_NOSUID|unix.MS_NODEV, data); err != nil {
		return fmt.Errorf("mount overlay at %s (%s): %w", target, data, err)
	}
	return nil
}

// escapeOverlayPath escapes the characters overlayfs splits options and
// lower layers on.
func escapeOverlayPath(p string) string {
	r := strings.NewReplacer(`\`, `\\`, `,`, `\,`, `:`, `\:`)
	return r.Replace(p)
}

// newUpperRoot makes the upper directory of one filesystem with the
// attributes of the base's root: overlayfs shows the upper directory's own
// attributes as the root of the merged tree, so an unedited clone must
// show the base's root, not a fresh directory.
func newUpperRoot(upper string, f *manifest.Filesystem) error {
	var root *manifest.Entry
	for i := range f.Files {
		e := &f.Files[i]
		for _, p := range e.Paths {
			if len(p) == 0 || string(p) == "/" {
				root = e
			}
		}
	}
	if root == nil || !root.IsDir() {
		return fmt.Errorf("partition %d: the base has no root directory", f.PartIndex)
	}
	tmp := upper + ".new"
	os.RemoveAll(tmp)
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return err
	}
	if err := applyAttrs(tmp, root); err != nil {
		return err
	}
	return os.Rename(tmp, upper)
}

// applyAttrs sets owner, xattrs, mode and times of path from e (owner
// before mode: chown clears setuid bits).
func applyAttrs(path string, e *manifest.Entry) error {
	if err := os.Lchown(path, int(e.UID), int(e.GID)); err != nil {
		return err
	}
	for _, x := range e.Xattrs {
		if err := unix.Lsetxattr(path, x.Name, x.Value, 0); err != nil {
			return fmt.Errorf("setxattr %s: %w", x.Name, err)
		}
	}
	if err := unix.Chmod(path, e.Mode&0o7777); err != nil {
		return err
	}
	ts := []unix.Timespec{unix.NsecToTimespec(e.Atime), unix.NsecToTimespec(e.Mtime)}
	return unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// Unmount unmounts the overlays, the tmpfs on DIR and the FUSE lower, then
// syncs the upper's filesystem and releases the clone. It fails (and keeps
// everything mounted that it could not unmount) while a process uses a
// file under DIR; calling it again later finishes the job.
func (mt *Mounted) Unmount() error {
	select {
	case <-mt.done: // already unmounted from outside (UnmountDir)
		return mt.closeErr
	default:
	}
	if err := unmountTree(mt.Dir, mt.Parts); err != nil {
		return err
	}
	if err := mt.srv.Unmount(); err != nil {
		return fmt.Errorf("unmount %s: %w", mt.d.Lower, err)
	}
	return mt.Wait()
}

// Wait blocks until the clone is unmounted (by Unmount, or by UnmountDir
// from another process), then releases it: the daemon form of a mount is
// Mount, then Wait.
func (mt *Mounted) Wait() error {
	<-mt.done
	return mt.closeErr
}

// finish runs once the FUSE lower has stopped: release everything and make
// the upper durable.
func (mt *Mounted) finish() {
	mt.release.Do(func() {
		if mt.fs != nil {
			mt.closeErr = mt.fs.Close()
		}
		if err := syncFS(mt.d.Upper); err != nil && mt.closeErr == nil {
			mt.closeErr = err
		}
		mt.unlock()
		close(mt.done)
	})
}

// abort undoes a Mount that failed half-way.
func (mt *Mounted) abort() {
	unmountTree(mt.Dir, mt.Parts)
	if mt.srv != nil {
		mt.srv.Unmount()
		<-mt.done
		return
	}
	mt.finish()
}

// unmountTree unmounts DIR/pN overlays and the tmpfs on DIR, skipping any
// already gone.
func unmountTree(dir string, parts []string) error {
	ms, err := mountinfo.Read()
	if err != nil {
		return err
	}
	mounted := map[string]bool{}
	for _, m := range ms {
		mounted[m.Dir] = true
	}
	for _, p := range parts {
		target := filepath.Join(dir, p)
		if !mounted[target] {
			continue
		}
		if err := unix.Unmount(target, 0); err != nil {
			return fmt.Errorf("unmount %s: %w (a process still uses it)", target, err)
		}
	}
	if isShell(ms, dir) {
		if err := unix.Unmount(dir, 0); err != nil {
			return fmt.Errorf("unmount %s: %w", dir, err)
		}
	}
	return nil
}

func isShell(ms []mountinfo.Mount, dir string) bool {
	found := false
	for _, m := range ms {
		if m.Dir == dir {
			found = m.FSType == "tmpfs" && strings.HasPrefix(m.Source, "mis-clone:")
		}
	}
	return found
}

// UnmountDir unmounts the tree clone mounted at dir, from any process:
// the overlays DIR/pN, the tmpfs on DIR, then the clone's FUSE lower. The
// process serving the lower then sees its server stop (Wait returns) and
// releases the clone. It also cleans up after a serving process that died.
func UnmountDir(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	ms, err := mountinfo.Read()
	if err != nil {
		return err
	}
	if !isShell(ms, dir) {
		return fmt.Errorf("%s: no tree clone is mounted there", dir)
	}
	var parts []string
	lowers := map[string]bool{}
	for _, m := range ms {
		if m.FSType != "overlay" || filepath.Dir(m.Dir) != dir {
			continue
		}
		parts = append(parts, filepath.Base(m.Dir))
		// upperdir is ROOT/upper/pN; the lower is served at ROOT/lower.
		if up, _ := mountinfo.Option(m.SuperOptions, "upperdir"); up != "" {
			lowers[filepath.Join(filepath.Dir(filepath.Dir(up)), "lower")] = true
		}
	}
	if err := unmountTree(dir, parts); err != nil {
		return err
	}
	for lower := range lowers {
		if _, err := mountfs.Unmount(lower, false); err != nil && !errors.Is(err, mountfs.ErrNotMounted) {
			return err
		}
	}
	return nil
}

// syncFS flushes the filesystem holding path (the upper's edits).
func syncFS(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}

// IsMountedAt reports whether a tree clone is mounted at dir (what `mis
// umount DIR` asks to choose between UnmountDir and mountfs.Unmount).
func IsMountedAt(dir string) (bool, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return false, err
	}
	ms, err := mountinfo.Read()
	if err != nil {
		return false, err
	}
	return isShell(ms, dir), nil
}

// Serve is the daemon form of a mount: it mounts the clone, calls ready,
// and serves until ctx is cancelled (then it unmounts; a busy mount is an
// error and stays mounted) or the clone is unmounted from outside with
// UnmountDir.
func Serve(ctx context.Context, r *repo.Repo, name, dir string, opt MountOptions, ready func(*Mounted)) error {
	mt, err := Mount(ctx, r, name, dir, opt)
	if err != nil {
		return err
	}
	if ready != nil {
		ready(mt)
	}
	select {
	case <-mt.done:
		return mt.closeErr
	case <-ctx.Done():
		return mt.Unmount()
	}
}
