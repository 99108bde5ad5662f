package ext4

import (
	"bytes"
	"encoding/binary"
	"io"
	"sort"
)

// Xattr is one extended attribute as the kernel presents it to getxattr.
type Xattr struct {
	Name  string
	Value []byte
}

const (
	xattrMagic       = 0xEA020000
	xattrBlockHeader = 32
	maxXattrValue    = 64 << 10 // XATTR_SIZE_MAX: the kernel never stores larger values
)

// xattrPrefixes maps e_name_index to the name prefix. Index 7 is
// "system." (system.data holds inline data). Indexes the kernel never
// lists (lustre 5, encryption context 9) are skipped.
var xattrPrefixes = map[uint8]string{
	1:  "user.",
	2:  "system.posix_acl_access",
	3:  "system.posix_acl_default",
	4:  "trusted.",
	6:  "security.",
	7:  "system.",
	8:  "system.richacl",
	10: "gnu.",
}

// Xattrs returns the extended attributes of inode ino, in-inode and in the
// external block, sorted by name. Empty values are kept. POSIX ACLs are
// converted to the xattr form the kernel returns (version 2, 8-byte
// entries). The internal system.data attribute (inline file content, see
// InlineData) is not listed, matching the kernel.
func (fs *FS) Xattrs(ino uint32) ([]Xattr, error) {
	in, err := fs.Inode(ino)
	if err != nil {
		return nil, err
	}
	all, err := fs.inodeXattrs(in, false)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, a := range all {
		if a.Name == "system.data" {
			continue
		}
		if a.Name == "system.posix_acl_access" || a.Name == "system.posix_acl_default" {
			v, err := aclToXattr(a.Value)
			if err != nil {
				return nil, &Error{Op: "xattr " + a.Name, Ino: ino, Err: err}
			}
			a.Value = v
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// inodeXattrs returns raw attributes; inInodeOnly stops after the in-inode area.
func (fs *FS) inodeXattrs(in *Inode, inInodeOnly bool) ([]Xattr, error) {
	var out []Xattr
	le := binary.LittleEndian
	if start := 128 + int(in.ExtraIsize); len(in.Raw) > 128 && start+4 <= len(in.Raw) {
		area := in.Raw[start:]
		if le.Uint32(area) == xattrMagic {
			attrs, err := fs.parseXattrEntries(in.Ino, 0, area[4:], area[4:])
			if err != nil {
				return nil, err
			}
			out = append(out, attrs...)
		}
	}
	if inInodeOnly || in.FileACL == 0 {
		return out, nil
	}
	blk := in.FileACL
	b, err := fs.metaBlock(blk)
	if err != nil {
		return nil, &Error{Op: "xattr block", Ino: in.Ino, Block: blk, Err: err}
	}
	if m := le.Uint32(b); m != xattrMagic {
		return nil, corrupt("xattr block", in.Ino, blk, "bad magic 0x%08x", m)
	}
	if n := le.Uint32(b[8:]); n != 1 {
		return nil, corrupt("xattr block", in.Ino, blk, "h_blocks %d (only 1 supported)", n)
	}
	attrs, err := fs.parseXattrEntries(in.Ino, blk, b[xattrBlockHeader:], b)
	if err != nil {
		return nil, err
	}
	return append(out, attrs...), nil
}

// parseXattrEntries decodes entries from ents; value offsets are relative
// to valBase (the first entry in-inode, the block start in a block).
func (fs *FS) parseXattrEntries(ino uint32, blk uint64, ents, valBase []byte) ([]Xattr, error) {
	le := binary.LittleEndian
	var out []Xattr
	for p := 0; p+4 <= len(ents) && le.Uint32(ents[p:]) != 0; {
		if p+16 > len(ents) {
			return nil, corrupt("xattr", ino, blk, "entry at offset %d truncated", p)
		}
		e := ents[p:]
		nameLen := int(e[0])
		idx := e[1]
		valOff := int(le.Uint16(e[2:]))
		valInum := le.Uint32(e[4:])
		valSize := int64(le.Uint32(e[8:]))
		if p+16+nameLen > len(ents) {
			return nil, corrupt("xattr", ino, blk, "entry name at offset %d runs past the area", p)
		}
		suffix := string(e[16 : 16+nameLen])
		p += (16 + nameLen + 3) &^ 3
		var val []byte
		switch {
		case valInum != 0:
			v, err := fs.eaInodeValue(ino, valInum, valSize)
			if err != nil {
				return nil, err
			}
			val = v
		case int64(valOff)+valSize > int64(len(valBase)):
			return nil, corrupt("xattr", ino, blk, "value of %q (%d bytes at %d) runs past the area", suffix, valSize, valOff)
		default:
			val = append([]byte{}, valBase[valOff:int64(valOff)+valSize]...)
		}
		prefix, ok := xattrPrefixes[idx]
		if !ok {
			continue
		}
		out = append(out, Xattr{Name: prefix + suffix, Value: val})
	}
	return out, nil
}

// eaInodeValue reads an xattr value stored in its own inode (ea_inode).
func (fs *FS) eaInodeValue(owner, inum uint32, size int64) ([]byte, error) {
	if size > maxXattrValue {
		return nil, corrupt("xattr", owner, 0, "ea_inode %d value size %d too large", inum, size)
	}
	in, err := fs.Inode(inum)
	if err != nil {
		return nil, err
	}
	if in.Flags&FlagEAInode == 0 || in.HasInlineData() || int64(in.Size) != size {
		return nil, corrupt("xattr", owner, 0, "ea_inode %d (flags 0x%x, size %d) does not hold a %d-byte value", inum, in.Flags, in.Size, size)
	}
	r, err := fs.openInode(in)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, size)
	if _, err := r.ReadAt(buf, 0); err != nil && err != io.EOF {
		return nil, err
	}
	return buf, nil
}

// ACL tags with an id field on disk.
const (
	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20
)

// aclToXattr converts ext4's compact on-disk ACL (version 1, 4-byte short
// entries) to the posix_acl_xattr form (version 2, 8-byte entries, id
// 0xffffffff for entries without a qualifier).
func aclToXattr(d []byte) ([]byte, error) {
	le := binary.LittleEndian
	if len(d) < 4 || le.Uint32(d) != 1 {
		return nil, wrapf(ErrCorrupt, "ACL header is not ext4 version 1")
	}
	var out bytes.Buffer
	out.Write([]byte{2, 0, 0, 0})
	for p := 4; p < len(d); {
		if p+4 > len(d) {
			return nil, wrapf(ErrCorrupt, "ACL entry at %d truncated", p)
		}
		tag, perm := le.Uint16(d[p:]), le.Uint16(d[p+2:])
		id := uint32(0xFFFFFFFF)
		switch tag {
		case aclUser, aclGroup:
			if p+8 > len(d) {
				return nil, wrapf(ErrCorrupt, "ACL entry at %d truncated", p)
			}
			id = le.Uint32(d[p+4:])
			p += 8
		case aclUserObj, aclGroupObj, aclMask, aclOther:
			p += 4
		default:
			return nil, wrapf(ErrCorrupt, "ACL entry at %d has unknown tag 0x%x", p, tag)
		}
		var e [8]byte
		le.PutUint16(e[0:], tag)
		le.PutUint16(e[2:], perm)
		le.PutUint32(e[4:], id)
		out.Write(e[:])
	}
	return out.Bytes(), nil
}
