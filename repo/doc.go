// Package repo is mis's content-addressed chunk store: a repository
// directory holding deduplicated, compressed chunks in immutable pack
// files, a Badger index of them, and callers' metadata (versions,
// manifests). This comment is the format reference (format version 1).
//
// # Directory layout
//
//	config.json   written once by Init (temp file, fsync, rename, fsync dir):
//	              {"format_version":1, "id":"<32 hex random>", "created":"<RFC 3339>",
//	               "chunker":{"min":N,"avg":N,"max":N}, "pack_target_size":N,
//	               "zstd_level":"fastest"|"default"|"better"|"best"}
//	              Its presence makes the directory a repository; Open refuses a
//	              directory without it and any format_version other than 1.
//	lock          the writer lock (see Concurrency)
//	meta/         Badger v4 database: chunk index and caller metadata
//	packs/<2 hex>/<64 hex>.pack   immutable packs, named by BLAKE3-256 of their content
//	packs/tmp/    packs being written; leftovers are deleted by the next writer
//	versions/<id>.json   record files: a second copy of each version record
//	              (layer's JSON), written after the commit that makes it
//	              visible, removed before the one that deletes it (records.go)
//	damaged/      what Repair moved out of the way: <64 hex>.pack (a damaged
//	              pack, byte for byte) and meta-<time>/ (a metadata database
//	              Badger could not use, or a copy of a suspicious one)
//
// Every directory is 0700 and every file 0600 (modes.go); Badger's own
// files are made 0600 after each read-write session opens and closes.
//
// # Pack files
//
// All integers are little endian.
//
//	header   "MISPACK1" (8 bytes)
//	bodies   chunk bodies back to back, starting at offset 8
//	entries  one 49-byte entry per chunk, in body order:
//	           id[32]  BLAKE3-256 of the raw chunk
//	           flags   u8: 0 = stored raw, 1 = zstd frame
//	           offset  u64: offset of the body in the pack
//	           stored  u32: body length
//	           raw     u32: chunk length after decompression
//	footer   entries_len u32 (= 49 × count) | count u32 |
//	         checksum[8] = first 8 bytes of BLAKE3-256(entries | entries_len | count) |
//	         "MISPIDX1"
//
// A pack is self-describing, so the chunk index can be rebuilt from the
// packs alone. Its name is the hex BLAKE3-256 of the whole file, so any
// damage anywhere in a pack is detectable by re-hashing it. A chunk body
// is a zstd frame (klauspost/compress, level from config, no frame CRC:
// the chunk id is the checksum) when that is shorter than the chunk,
// else the raw bytes. The writer seals a pack when adding the next chunk
// would exceed pack_target_size (default 32 MiB); a pack holds at least
// one chunk, so a pack is at most target + one chunk + trailer.
//
// # Metadata keys (Badger)
//
//	"c/" + id[32]   -> pack name[32] | offset u64 | stored_len u32 | raw_len u32 | flags u8   (49 bytes)
//	"p/" + name[32] -> size u64 | chunk count u32 | created unix seconds u64                   (20 bytes)
//	anything else   -> callers' metadata, through Tx (Get/Put/Delete/Iterate)
//
// "c/" and "p/" are reserved: Tx rejects keys with those prefixes and
// Iterate skips them. A chunk is indexed once; if a chunk is in two packs
// (possible only after recovery), the index names one of them.
//
// Badger runs with a small memory budget: 16 MiB memtables × 2, 16 MiB
// block cache, 8 MiB index cache, 64 MiB value log files, 2 compactors,
// and its logger silenced unless MIS_DEBUG is set in the environment.
//
// # Concurrency
//
// Badger takes an exclusive flock on meta/ for a read-write open and a
// shared one for a read-only open. So nobody keeps it open read-write for
// long:
//
//   - Readers (View, Lookup, Verify, Stats) open it read-only for a short
//     session. While a writer holds it read-write they retry with backoff
//     until the context deadline (default DefaultBusyTimeout, 2 minutes),
//     then fail with "repository metadata is busy (held by ...)". If the
//     database was left unclean by a killed read-write session, a
//     read-only open is impossible (Badger wants to truncate its log), so
//     the reader first does a brief read-write open to repair it.
//   - One writer at a time: OpenWriter takes flock(LOCK_EX|LOCK_NB) on
//     DIR/lock for the writer's life and writes {pid, host, command,
//     started} into it, so a second writer's error names the holder. The
//     kernel drops the flock when the holder dies, so a killed writer's
//     lock is taken over without intervention.
//   - Data phase: the writer keeps Badger open read-only (readers are not
//     blocked) for dedup lookups. New chunks go into the open pack, held
//     in memory, and a pending map (id -> place) that also serves Has and
//     Read. A full pack is sealed: written to packs/tmp, fsynced, renamed
//     to its content name, directory fsynced.
//   - Commit seals the open pack, closes the read-only handle, opens
//     read-write (waiting while readers hold it), writes "c/" and "p/"
//     entries for every pack sealed since the last commit, syncs, runs the
//     caller's function in one read-write transaction (e.g. the version
//     record), syncs, closes, and reopens read-only. So a chunk is indexed
//     only after its pack is durable, and a version is visible only after
//     all its chunks are.
//   - Recovery, at OpenWriter: leftovers of interrupted pack writes are
//     removed (PackStore.RemoveIncomplete: packs/tmp is emptied); every pack in storage
//     without a "p/" entry (sealed by a writer that died before Commit) is
//     read, its name and trailer checked, and its chunks indexed, so its
//     data is reused rather than rewritten; an unreadable one is removed
//     with a warning.
//   - Repair (verify --repair, repair.go) is a writer that rebuilds the
//     "c/" and "p/" keys from the packs' trailers, salvages damaged packs
//     and replaces a metadata database Badger cannot use.
//
// # Pack storage
//
// Packs are read and written only through PackStore (Put, Open + ranged
// ReadAt, Stat, List, Remove, RemoveIncomplete; every method takes a
// context). LocalPackStore, the layout above, is the default. The
// interface's comment is the contract a store must meet, in particular:
// a missing pack is an error wrapping fs.ErrNotExist (ChunkReader then
// looks the chunk up again, since gc may have moved it), Remove of a
// missing pack succeeds, a pack is visible only once completely stored,
// and re-putting a name is harmless because names are content hashes.
// packstoretest.Run checks a store against the contract.
package repo
