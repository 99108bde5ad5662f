package repo

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/zeebo/blake3"

	"mis/chunker"
)

// Pack file layout (version 1), all integers little endian:
//
//	header   "MISPACK1"
//	bodies   chunk bodies back to back
//	entries  count × packEntrySize: id[32] flags u8 offset u64 stored_len u32 raw_len u32
//	footer   entries_len u32 | count u32 | checksum[8] | "MISPIDX1"
//
// checksum is the first 8 bytes of BLAKE3(entries | entries_len | count).
const (
	packMagic       = "MISPACK1"
	packIndexMagic  = "MISPIDX1"
	packEntrySize   = 32 + 1 + 8 + 4 + 4
	packFooterSize  = 4 + 4 + 8 + 8
	packHeaderSize  = len(packMagic)
	flagRaw         = 0
	flagZstd        = 1
	maxPackEntries  = 1 << 24
	packNameRawSize = 32
)

// packEntry describes one chunk inside a pack.
type packEntry struct {
	ID        chunker.ID
	Flags     uint8
	Offset    uint64
	StoredLen uint32
	RawLen    uint32
}

// packBuilder assembles one pack in memory. Keeping the open pack in
// memory lets the writer serve reads of chunks not yet sealed and makes
// the pack a single PUT for object stores; its size is bounded by the
// pack target size.
type packBuilder struct {
	buf     []byte
	entries []packEntry
}

// newPackBuilder starts a pack; spare, if not nil, is a buffer to reuse.
func newPackBuilder(capacity int64, spare []byte) *packBuilder {
	if int64(cap(spare)) < capacity {
		spare = make([]byte, 0, capacity+capacity/8)
	}
	b := &packBuilder{buf: append(spare[:0], packMagic...)}
	return b
}

func (b *packBuilder) add(id chunker.ID, flags uint8, stored []byte, rawLen int) packEntry {
	e := packEntry{ID: id, Flags: flags, Offset: uint64(len(b.buf)), StoredLen: uint32(len(stored)), RawLen: uint32(rawLen)}
	b.buf = append(b.buf, stored...)
	b.entries = append(b.entries, e)
	return e
}

func (b *packBuilder) size() int64 { return int64(len(b.buf)) }

func (b *packBuilder) body(e packEntry) []byte {
	return b.buf[e.Offset : e.Offset+uint64(e.StoredLen)]
}

// finish appends the trailer and returns the complete pack and its name.
func (b *packBuilder) finish() ([]byte, string) {
	b.buf = appendTrailer(b.buf, b.entries)
	sum := blake3.Sum256(b.buf)
	return b.buf, hex.EncodeToString(sum[:])
}

func appendTrailer(buf []byte, entries []packEntry) []byte {
	start := len(buf)
	for _, e := range entries {
		buf = append(buf, e.ID[:]...)
		buf = append(buf, e.Flags)
		buf = binary.LittleEndian.AppendUint64(buf, e.Offset)
		buf = binary.LittleEndian.AppendUint32(buf, e.StoredLen)
		buf = binary.LittleEndian.AppendUint32(buf, e.RawLen)
	}
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(buf)-start))
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(entries)))
	sum := blake3.Sum256(buf[start:])
	buf = append(buf, sum[:8]...)
	return append(buf, packIndexMagic...)
}

// readPackTrailer reads and checks the entry list of a pack of the given size.
func readPackTrailer(r io.ReaderAt, size int64) ([]packEntry, error) {
	if size < int64(packHeaderSize+packFooterSize) {
		return nil, fmt.Errorf("pack is %d bytes, too short to be a pack", size)
	}
	var head [packHeaderSize]byte
	if _, err := r.ReadAt(head[:], 0); err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	if string(head[:]) != packMagic {
		return nil, fmt.Errorf("bad header magic %q", head[:])
	}
	var foot [packFooterSize]byte
	if _, err := r.ReadAt(foot[:], size-packFooterSize); err != nil {
		return nil, fmt.Errorf("read footer: %w", err)
	}
	if string(foot[16:]) != packIndexMagic {
		return nil, fmt.Errorf("bad trailer magic %q at offset %d (truncated pack?)", foot[16:], size-8)
	}
	entriesLen := int64(binary.LittleEndian.Uint32(foot[0:]))
	count := int64(binary.LittleEndian.Uint32(foot[4:]))
	if count > maxPackEntries || entriesLen != count*packEntrySize {
		return nil, fmt.Errorf("trailer says %d entries in %d bytes: inconsistent", count, entriesLen)
	}
	bodiesEnd := size - packFooterSize - entriesLen
	if bodiesEnd < int64(packHeaderSize) {
		return nil, fmt.Errorf("trailer length %d does not fit in a %d-byte pack", entriesLen, size)
	}
	raw := make([]byte, entriesLen+8)
	if _, err := r.ReadAt(raw, bodiesEnd); err != nil {
		return nil, fmt.Errorf("read trailer: %w", err)
	}
	sum := blake3.Sum256(raw)
	if !bytes.Equal(sum[:8], foot[8:16]) {
		return nil, fmt.Errorf("trailer checksum mismatch at offset %d", bodiesEnd)
	}
	entries := make([]packEntry, count)
	for i := range entries {
		p := raw[i*packEntrySize:]
		e := &entries[i]
		copy(e.ID[:], p[:32])
		e.Flags = p[32]
		e.Offset = binary.LittleEndian.Uint64(p[33:])
		e.StoredLen = binary.LittleEndian.Uint32(p[41:])
		e.RawLen = binary.LittleEndian.Uint32(p[45:])
		if e.Flags > flagZstd {
			return nil, fmt.Errorf("entry %d (chunk %s): unknown flags %d", i, e.ID.Short(), e.Flags)
		}
		if e.Offset < uint64(packHeaderSize) || e.Offset+uint64(e.StoredLen) > uint64(bodiesEnd) {
			return nil, fmt.Errorf("entry %d (chunk %s): range %d+%d outside the bodies (%d..%d)",
				i, e.ID.Short(), e.Offset, e.StoredLen, packHeaderSize, bodiesEnd)
		}
	}
	return entries, nil
}

// packNameOf returns the name a pack with this content must have.
func packNameOf(data []byte) string {
	sum := blake3.Sum256(data)
	return hex.EncodeToString(sum[:])
}

type bytesReaderAt []byte

func (b bytesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
