// Package ext4 is a focused, read-only reader for ext2, ext3 and ext4
// filesystems inside raw disk images, written for the importer: it walks
// every inode, decodes metadata exactly as the kernel shows it, reads file
// content (holes and unwritten extents as zeros) and reports which blocks
// hold file content (Extents), which hold mapping metadata (MetaBlocks)
// and which are in use at all (UsedBlocks).
//
// Supported: block sizes 1 KiB to 64 KiB; 32- and 64-bit group
// descriptors; flex_bg; meta_bg; sparse_super and sparse_super2; inode
// sizes from 128 bytes up; extra_isize timestamps (nanoseconds, years
// before 1970 and after 2038) and crtime; huge_file; extent trees of any
// depth and ext2/3 direct/indirect block maps; linear and htree
// directories (htree read linearly), with or without the filetype feature;
// inline_data files, directories and symlinks; fast and slow symlinks;
// in-inode and block xattrs, ea_inode values; POSIX ACLs converted to the
// kernel's xattr form; casefold directories (names are read as stored).
//
// Refused with a clear error: a journal that needs recovery (ErrDirtyJournal;
// not replayed), compression, dirdata, encryption and journal devices
// (ErrUnsupported), and UsedBlocks on bigalloc filesystems. An inode whose
// i_size exceeds what the kernel allows for it (FS.MaxFileSize: depends on
// the block size, extents or block map, and huge_file) is corrupt, as the
// kernel's iget says too (ErrCorrupt naming the inode and the limit).
//
// Checksums: only the superblock checksum (metadata_csum) is verified.
// Group descriptor, inode, extent block, directory block and xattr block
// checksums are not; structural checks (magic numbers, bounds, loops,
// overlaps) catch corruption that would make the reader misbehave.
//
// Names: Walk reports only paths a file tree can hold. A directory entry
// whose name is empty, "." or ".." (besides the real ones), contains "/"
// or NUL, or repeats a name of its directory is reported under an escaped,
// unique name and FS.Warn is told (see Walk); none is dropped silently.
// name_len is one byte, as in the kernel, also without the filetype feature.
//
// Orphan lists are ignored: orphaned inodes are not reachable from the
// root and thus not walked.
package ext4
