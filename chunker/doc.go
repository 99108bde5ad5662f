// Package chunker splits data into content-defined chunks and names them.
//
// A chunk's ID is the BLAKE3-256 hash of its raw (uncompressed) bytes.
//
// Cut points come from FastCDC (Xia et al., USENIX ATC 2016) with normalized
// chunking: a gear rolling hash (h = h<<1 + gear[byte]), no cut in the first
// Min bytes of a chunk (they are not even hashed), a strict mask until the
// chunk reaches Avg bytes and a loose one after it, and a forced cut at Max.
// Boundary documents the exact rule. The following are part of the on-disk
// format, since changing any of them moves cut points and defeats
// deduplication against existing stores; tests pin them:
//
//   - the gear table: 256 little-endian uint64 taken from the BLAKE3 XOF of
//     "mis chunker gear table v1" (printf 'mis chunker gear table v1' |
//     b3sum --length 2048 --raw reproduces its 2048 bytes);
//   - normalization level 2: the strict mask has log2(Avg)+2 one-bits, the
//     loose one log2(Avg)-2, both taken from the top of the hash (the top
//     bits depend on the last 64 bytes, the low bits on only a few);
//   - the Params a store was created with (kept in the store's config).
//
// A run of zeros drives the gear hash to a fixed point that never matches
// the masks, so unused regions of a disk image cut at Max into identical
// chunks that deduplicate to one.
//
// # Choice of the default parameters
//
// DefaultParams is Min/Avg/Max = 16/64/256 KiB. BenchmarkParams measured the
// candidates on 200 MB of this machine's /usr/lib/x86_64-linux-gnu and
// /usr/bin laid out as a tar stream (hard links stored once); "shared" is the
// share of the edited stream's bytes found in chunks of the original after
// 100 scattered edits, either small insertions or 4 KiB block overwrites:
//
//	Min/Avg/Max KiB  mean chunk  chunks/GiB  shared(insert)  shared(overwrite)  zstd size
//	8/32/128         38.5 KB     27889       98.1%           97.2%              42.3%
//	16/64/256        77.0 KB     13937       96.0%           95.3%              41.2%
//	32/128/512       152.5 KB     7040       92.4%           91.8%              40.2%
//
// Cutting runs at the same speed for all three (about 2 GB/s on one core,
// since the same fraction of bytes is skipped), so the choice is index size
// against dedup granularity. Each halving of Avg doubles the chunk count, and
// with it the index entries, the per-image chunk list (~40 bytes per chunk:
// 11 MB per version of a 20 GiB image at 64 KiB), the lookups and the
// per-chunk compression frames, while it recovers only 2-4% of a scattered
// edit workload and compresses ~1% worse. 128 KiB loses 4% more data on
// each round of small edits, which is what VM disks see. 64 KiB sits in the
// middle, and is also what casync and desync default to.
package chunker
