package repo

import (
	"bytes"

	"mis/chunker"
)

// scanPack finds chunk bodies in a pack whose trailer is lost and that no
// index entry describes (a truncated pack after the metadata database was
// lost too). Bodies lie back to back from offset 8 with nothing between
// them, so it walks them: a zstd frame is self-delimiting (its block
// headers give its length) and is kept when it decodes; the bytes up to
// the next frame that decodes are raw bodies, cut with the repository's
// chunker (exact for every chunk but the last of a stream, which ends at
// the next frame anyway).
//
// Every entry it returns is right by construction: its id is the BLAKE3
// of the bytes its body decodes to. A wrong guess (a raw chunk cut where
// its stream did not cut it, a zstd frame embedded in a raw chunk) only
// yields chunks nobody references, which gc removes; it can lose real
// chunks up to the next frame, never corrupt one.
func scanPack(data []byte, p chunker.Params) []packEntry {
	var out []packEntry
	var raw []byte
	pos := packHeaderSize
	for pos < len(data) {
		if n, ok := zstdFrameLen(data[pos:]); ok {
			if out2, ok := decodeFrame(data[pos:pos+n], raw); ok {
				raw = out2
				out = append(out, packEntry{ID: chunker.Sum(out2), Flags: flagZstd, Offset: uint64(pos),
					StoredLen: uint32(n), RawLen: uint32(len(out2))})
				pos += n
				continue
			}
		}
		// Raw bodies up to the next frame that decodes (or the end).
		end := nextFrame(data, pos+1, raw)
		for pos < end {
			n := chunker.Boundary(data[pos:end], p)
			if n <= 0 {
				break
			}
			out = append(out, packEntry{ID: chunker.Sum(data[pos : pos+n]), Flags: flagRaw, Offset: uint64(pos),
				StoredLen: uint32(n), RawLen: uint32(n)})
			pos += n
		}
	}
	return out
}

var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// nextFrame returns the offset of the first zstd frame at or after from
// that decodes, or len(data).
func nextFrame(data []byte, from int, scratch []byte) int {
	for from < len(data) {
		i := bytes.Index(data[from:], zstdMagic)
		if i < 0 {
			return len(data)
		}
		at := from + i
		if n, ok := zstdFrameLen(data[at:]); ok {
			if _, ok := decodeFrame(data[at:at+n], scratch); ok {
				return at
			}
		}
		from = at + 1
	}
	return len(data)
}

// decodeFrame decodes one frame into a chunk-sized buffer.
func decodeFrame(frame, dst []byte) ([]byte, bool) {
	if cap(dst) < chunker.MaxLimit {
		dst = make([]byte, 0, chunker.MaxLimit)
	}
	out, err := sharedDecoder().DecodeAll(frame, dst[:0:chunker.MaxLimit])
	if err != nil || len(out) == 0 {
		return dst, false
	}
	return out, true
}

// zstdFrameLen returns the length of the zstd frame at the start of b
// (RFC 8878: magic, frame header, blocks, optional checksum), or false if
// b does not start with a complete frame.
func zstdFrameLen(b []byte) (int, bool) {
	if len(b) < 6 || !bytes.Equal(b[:4], zstdMagic) {
		return 0, false
	}
	fhd := b[4]
	if fhd&0x08 != 0 { // reserved bit
		return 0, false
	}
	single := fhd&0x20 != 0
	pos := 5
	if !single {
		pos++ // window descriptor
	}
	pos += [4]int{0, 1, 2, 4}[fhd&0x03] // dictionary id
	switch fhd >> 6 {                   // frame content size
	case 0:
		if single {
			pos++
		}
	case 1:
		pos += 2
	case 2:
		pos += 4
	case 3:
		pos += 8
	}
	for {
		if pos+3 > len(b) {
			return 0, false
		}
		h := uint32(b[pos]) | uint32(b[pos+1])<<8 | uint32(b[pos+2])<<16
		pos += 3
		last := h&1 != 0
		size := int(h >> 3)
		switch (h >> 1) & 3 {
		case 0, 2: // raw, compressed
			pos += size
		case 1: // RLE
			pos++
		default:
			return 0, false
		}
		if pos > len(b) || pos > 2*chunker.MaxLimit {
			return 0, false
		}
		if last {
			break
		}
	}
	if fhd&0x04 != 0 { // content checksum
		pos += 4
	}
	if pos > len(b) {
		return 0, false
	}
	return pos, true
}
