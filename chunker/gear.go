package chunker

import (
	"encoding/binary"

	"github.com/zeebo/blake3"
)

// gearSeed names the gear table. The table is part of the on-disk format:
// changing the seed (or how the table is derived from it) moves every cut
// point and so breaks deduplication against existing stores.
const gearSeed = "mis chunker gear table v1"

// gear maps each byte value to a pseudo-random 64-bit word for the rolling
// hash. Entry i is little-endian bytes [8i, 8i+8) of the BLAKE3 extendable
// output (XOF) of gearSeed.
var gear = makeGear(gearSeed)

func makeGear(seed string) [256]uint64 {
	h := blake3.New()
	_, _ = h.WriteString(seed)
	var raw [256 * 8]byte
	_, _ = h.Digest().Read(raw[:])
	var t [256]uint64
	for i := range t {
		t[i] = binary.LittleEndian.Uint64(raw[8*i:])
	}
	return t
}
