package otherfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/fat12"
	"github.com/diskfs/go-diskfs/filesystem/fat16"
	"github.com/diskfs/go-diskfs/filesystem/fat32"

	"mis/manifest"
)

// fatMode is what vfat shows with default options when root mounts: the
// mounter's umask (022) masks 0777 for files and directories alike.
const fatMode = 0o755

// openFAT tells FAT12, FAT16 and FAT32 apart the way the specification
// does (by cluster count) and opens the filesystem with go-diskfs.
func openFAT(src sectionStorage, size int64) (filesystem.FileSystem, *Info, error) {
	bs := make([]byte, 512)
	if _, err := src.ReadAt(bs, 0); err != nil {
		return nil, nil, fmt.Errorf("boot sector: %w", err)
	}
	bytesPerSector := uint32(binary.LittleEndian.Uint16(bs[11:]))
	perCluster := uint32(bs[13])
	reserved := uint32(binary.LittleEndian.Uint16(bs[14:]))
	fats := uint32(bs[16])
	rootEntries := uint32(binary.LittleEndian.Uint16(bs[17:]))
	sectors := uint32(binary.LittleEndian.Uint16(bs[19:]))
	if sectors == 0 {
		sectors = binary.LittleEndian.Uint32(bs[32:])
	}
	fatSectors := uint32(binary.LittleEndian.Uint16(bs[22:]))
	if fatSectors == 0 {
		fatSectors = binary.LittleEndian.Uint32(bs[36:])
	}
	if bytesPerSector == 0 || perCluster == 0 {
		return nil, nil, errors.New("boot sector: zero bytes per sector or sectors per cluster")
	}
	rootSectors := (rootEntries*32 + bytesPerSector - 1) / bytesPerSector
	meta := reserved + fats*fatSectors + rootSectors
	if meta > sectors {
		return nil, nil, fmt.Errorf("boot sector: %d metadata sectors exceed the %d sectors of the volume", meta, sectors)
	}
	clusters := (sectors - meta) / perCluster
	info := &Info{BlockSize: bytesPerSector * perCluster}
	bits := 32
	switch {
	case clusters < 4085:
		bits = 12
	case clusters < 65525:
		bits = 16
	}
	info.Variant = fmt.Sprintf("fat%d", bits)
	// The volume serial, written as blkid and /dev/disk/by-uuid show it.
	serialAt := 39
	if bits == 32 {
		serialAt = 67
	}
	serial := binary.LittleEndian.Uint32(bs[serialAt:])
	info.UUID = fmt.Sprintf("%04X-%04X", serial>>16, serial&0xffff)
	if err := checkFATChains(src, bits, int64(reserved)*int64(bytesPerSector), fatSectors*bytesPerSector, clusters); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", info.Variant, err)
	}
	var (
		fsys filesystem.FileSystem
		err  error
	)
	switch bits {
	case 12:
		fsys, err = fat12.Read(src, size, 0, 512)
	case 16:
		fsys, err = fat16.Read(src, size, 0, 512)
	default:
		fsys, err = fat32.Read(src, size, 0, int64(bytesPerSector))
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", info.Variant, err)
	}
	info.Label = strings.TrimRight(fsys.Label(), " ")
	return fsys, info, nil
}

type fatFlavour struct{}

func (fatFlavour) dirNlink() bool  { return true }
func (fatFlavour) ownInodes() bool { return false }

// The root directory has no directory entry, hence no times: vfat shows 0.
func (fatFlavour) root(filesystem.FileSystem) (manifest.Entry, error) {
	return manifest.Entry{Mode: manifest.ModeDir | fatMode}, nil
}

func (fatFlavour) entry(fi fs.FileInfo) (manifest.Entry, any, error) {
	t := fi.ModTime().UnixNano()
	e := manifest.Entry{Mode: manifest.ModeRegular | fatMode, Nlink: 1, Mtime: t, Ctime: t, Atime: t}
	if fi.IsDir() {
		e.Mode = manifest.ModeDir | fatMode
	} else {
		e.Size = uint64(fi.Size())
	}
	return e, nil, nil
}
