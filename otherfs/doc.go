// Package otherfs walks the secondary filesystems mis meets in disk images
// (FAT12/16/32, ISO 9660 and squashfs) into manifest entries, reading them
// through go-diskfs. mis stores these filesystems' bytes whole in the
// residual, so the entries carry no extents: their content is "detached",
// kept for dedup, info and mounts only.
//
// Where a format has no field for an attribute, the entry holds what a
// default `mount -o ro` of the filesystem on Linux shows:
//
//   - FAT: every file and directory is owned by uid/gid 0 (the mounting
//     root) with mode 0755 (the kernel's default fmask/dmask is the mounter's
//     umask, 022); read-only files lose their write bits. ctime is the mtime
//     (FAT has no ctime). The root directory has times 0 (the epoch), as
//     vfat shows it. Times are read as UTC, which is what vfat does when the
//     kernel's timezone is unset (the usual case in VMs) or with tz=UTC.
//     Names are the long (VFAT) name where there is one, else the 8.3 name
//     with the NT lower-case flags applied (shortname=mixed, the default).
//     go-diskfs exposes only the modification time (2 s precision) of an
//     entry: creation and access times are not recorded (Crtime 0, Atime =
//     Mtime), nor the read-only attribute.
//   - ISO 9660: mode, uid, gid, nlink and symlink targets come from Rock
//     Ridge PX/SL records where present (the root's PX is read here, as
//     go-diskfs skips it); all times are the directory record's recording
//     time (1 s), as go-diskfs reads no TF record.
//   - squashfs: mode (permission bits; go-diskfs drops setuid, setgid and
//     sticky), uid, gid, mtime (atime and ctime equal it, as the kernel
//     shows), inode numbers, hardlinks and symlink targets. Not recorded:
//     device numbers (go-diskfs does not expose them) and xattrs (go-diskfs
//     loses their namespace prefix, and a file with three or more xattrs
//     makes its directory unreadable, so such images fall back to residual).
//
// Inode numbers are the filesystem's own for squashfs and synthetic (walk
// order, 1 for the root) for FAT and ISO 9660.
package otherfs
