package otherfs

import (
	"encoding/binary"
	"fmt"
	"io/fs"

	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/squashfs"

	"mis/manifest"
)

func openSquashfs(src sectionStorage, size int64) (filesystem.FileSystem, *Info, error) {
	sb := make([]byte, 96)
	if _, err := src.ReadAt(sb, 0); err != nil {
		return nil, nil, fmt.Errorf("superblock: %w", err)
	}
	// go-diskfs's blocksize argument is the device's sector size, not the
	// squashfs block size, and must be 4096 here.
	fsys, err := squashfs.Read(src, size, 0, 4096)
	if err != nil {
		return nil, nil, err
	}
	return fsys, &Info{Variant: "squashfs", BlockSize: binary.LittleEndian.Uint32(sb[12:])}, nil
}

type squashFlavour struct{}

func (squashFlavour) dirNlink() bool  { return true }
func (squashFlavour) ownInodes() bool { return true }

func (f squashFlavour) root(fsys filesystem.FileSystem) (manifest.Entry, error) {
	fi, err := fsys.Stat(".")
	if err != nil {
		return manifest.Entry{}, err
	}
	e, _, err := f.entry(fi)
	return e, err
}

// squashInode is the identity of a squashfs inode, to group hardlinks.
type squashInode uint32

func (squashFlavour) entry(fi fs.FileInfo) (manifest.Entry, any, error) {
	st, ok := fi.Sys().(*squashfs.StatT)
	if !ok {
		return manifest.Entry{}, nil, fmt.Errorf("go-diskfs gave no squashfs inode (%T)", fi.Sys())
	}
	// squashfs keeps one time; the kernel shows it as atime and ctime too.
	t := fi.ModTime().UnixNano()
	m := fi.Mode()
	e := manifest.Entry{Ino: st.Inode, Mode: typeBits(m) | permBits(m), UID: st.UID, GID: st.GID, Nlink: 1,
		Size: uint64(fi.Size()), Mtime: t, Atime: t, Ctime: t}
	switch e.Mode & manifest.ModeType {
	case manifest.ModeSymlink:
		e.Symlink, e.Size = []byte(st.LinkTarget), uint64(len(st.LinkTarget))
	case manifest.ModeRegular, manifest.ModeDir:
	default:
		e.Size = 0
	}
	// No xattrs: go-diskfs drops their namespace ("user.color" comes back
	// as "color"), so the names it gives are wrong and are not recorded.
	return e, squashInode(st.Inode), nil
}
