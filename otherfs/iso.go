package otherfs

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"strings"

	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"

	"mis/manifest"
)

const isoSector = 2048

func openISO(src sectionStorage, size int64) (filesystem.FileSystem, *Info, error) {
	pvd := make([]byte, isoSector)
	if _, err := src.ReadAt(pvd, 16*isoSector); err != nil {
		return nil, nil, fmt.Errorf("primary volume descriptor: %w", err)
	}
	fsys, err := iso9660.Read(src, size, 0, isoSector)
	if err != nil {
		return nil, nil, err
	}
	info := &Info{Variant: "iso9660", BlockSize: uint32(binary.LittleEndian.Uint16(pvd[128:])),
		Label: strings.TrimRight(fsys.Label(), " ")}
	return fsys, info, nil
}

type isoFlavour struct{ src sectionStorage }

func (isoFlavour) dirNlink() bool  { return false }
func (isoFlavour) ownInodes() bool { return false }

func (f isoFlavour) root(fsys filesystem.FileSystem) (manifest.Entry, error) {
	fi, err := fsys.Stat(".")
	if err != nil {
		return manifest.Entry{}, err
	}
	e, _, err := f.entry(fi)
	if err != nil {
		return e, err
	}
	// go-diskfs reads no Rock Ridge record for the root (it shows 0755
	// root:root whatever the image says): read the PX of its "." entry.
	if st, ok := fi.Sys().(*iso9660.StatT); ok && !st.RockRidge {
		if px, ok := rootPX(f.src, st.Location); ok {
			e.Mode, e.Nlink, e.UID, e.GID = px.mode, px.nlink, px.uid, px.gid
		}
	}
	return e, nil
}

type posixAttrs struct{ mode, nlink, uid, gid uint32 }

// rootPX finds the Rock Ridge PX entry in the system use area of the "."
// record that starts the root directory's extent.
func rootPX(src sectionStorage, extent uint32) (posixAttrs, bool) {
	rec := make([]byte, 255)
	if _, err := src.ReadAt(rec, int64(extent)*isoSector); err != nil {
		return posixAttrs{}, false
	}
	n := int(rec[0])
	if n < 34 || rec[32] != 1 || rec[33] != 0 {
		return posixAttrs{}, false // not a "." record
	}
	// "." has a 1-byte identifier, so no padding: system use starts at 34.
	for su := rec[34:n]; len(su) >= 4; {
		l := int(su[2])
		if l < 4 || l > len(su) {
			break
		}
		if su[0] == 'P' && su[1] == 'X' && l >= 36 {
			le := binary.LittleEndian
			return posixAttrs{mode: le.Uint32(su[4:]), nlink: le.Uint32(su[12:]), uid: le.Uint32(su[20:]), gid: le.Uint32(su[28:])}, true
		}
		su = su[l:]
	}
	return posixAttrs{}, false
}

// isoFile is the identity of a hardlinked ISO file: its data's first block.
type isoFile uint32

func (isoFlavour) entry(fi fs.FileInfo) (manifest.Entry, any, error) {
	st, ok := fi.Sys().(*iso9660.StatT)
	if !ok {
		return manifest.Entry{}, nil, fmt.Errorf("go-diskfs gave no ISO 9660 record (%T)", fi.Sys())
	}
	t := fi.ModTime().UnixNano()
	m := fi.Mode()
	e := manifest.Entry{Mode: typeBits(m) | permBits(m), UID: st.UID, GID: st.GID, Nlink: st.NLink,
		Size: uint64(fi.Size()), Mtime: t, Atime: t, Ctime: t}
	if e.Nlink == 0 && e.Mode&manifest.ModeType != manifest.ModeDir {
		e.Nlink = 1
	}
	var key any
	switch e.Mode & manifest.ModeType {
	case manifest.ModeSymlink:
		target, ok := fi.(interface{ ReadLink() (string, bool) }).ReadLink()
		if !ok {
			target = st.LinkTarget
		}
		e.Symlink, e.Size = []byte(target), uint64(len(target))
	case manifest.ModeRegular:
		// Rock Ridge hardlinks share their data; empty files all share
		// one block and are not links.
		if e.Nlink > 1 && e.Size > 0 {
			key = isoFile(st.Location)
		}
	}
	return e, key, nil
}
