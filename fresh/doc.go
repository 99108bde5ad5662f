// Package fresh builds a new disk image from a stored version instead of
// replaying its bytes: `mis export --fresh`.
//
// The partition table is rewritten from the manifest's layout by sfdisk
// (same kind, disk id, starts, types, GUIDs, names, attributes); the last
// partition may grow. Every ext2/3/4 filesystem is rebuilt by mke2fs -d
// reading the version's own FUSE tree (mountfs, mounted in-process), with
// the identity of the original (UUID, label, hash seed, features, block and
// inode size, group geometry), then a debugfs pass restores what mke2fs -d
// drops (nanosecond and post-2038 times, atime, crtime, inode flags,
// generation). FAT filesystems are rebuilt by mkfs.vfat with the original
// boot-sector geometry and filled by mcopy. Any other partition is copied
// byte for byte from the version's disk view. Free space stays zero (the
// output starts as one hole), and every tool runs with fixed times and ids,
// so exporting the same version twice gives identical bytes.
package fresh
