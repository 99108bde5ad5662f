// Package mountfs serves a stored image version read-only through FUSE:
//
//	DIR/disk.raw   the whole disk, byte-identical to `mis export`
//	DIR/pN/        the file tree of the filesystem in partition N (p0: bare)
//
// Nothing is extracted: every read is answered from the repository's chunks.
// A View maps a linear space (the disk, or one file) to pieces of chunks,
// found by binary search; gaps read as zeros. Decompressed chunks are kept in
// a bounded LRU cache, and sequential reads prefetch the chunks ahead on
// background goroutines, so reading a file start to end becomes a sequential
// read of its packs.
//
// The repository's metadata database is used only while New runs (to look
// up chunk locations); serving needs just the pack files, so writers can
// commit while a version is mounted.
//
// A chunk that fails verification is never served: the read returns EIO and
// the chunk's id is logged once.
package mountfs
