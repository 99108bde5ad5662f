package chunker

import (
	"encoding/hex"
	"fmt"

	"github.com/zeebo/blake3"
)

// IDSize is the length of a chunk ID in bytes.
const IDSize = 32

// ID names a chunk: the BLAKE3-256 hash of its raw (uncompressed) bytes.
type ID [IDSize]byte

// String returns the ID as 64 lowercase hex digits.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Short returns the first 12 hex digits, for logs and messages.
func (id ID) Short() string { return hex.EncodeToString(id[:6]) }

// IsZero reports whether id is the all-zero value (no chunk).
func (id ID) IsZero() bool { return id == ID{} }

// ParseID parses the 64-hex-digit form produced by String.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*IDSize {
		return id, fmt.Errorf("chunker: chunk id %q: want %d hex digits, got %d", s, 2*IDSize, len(s))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("chunker: chunk id %q: %w", s, err)
	}
	return id, nil
}

// Sum returns the ID of b. It is safe for concurrent use and does not
// allocate. blake3.Sum256 keeps its hasher state on the stack, and a pooled,
// Reset-and-reused blake3.Hasher measured no faster (best of 15 runs over
// 16 MiB: 3.0 GB/s at 64 KiB, 1.1-1.2 GB/s at 4 KiB, ~0.47 GB/s at 512 B for
// both), so there is no reusable hasher type.
func Sum(b []byte) ID { return blake3.Sum256(b) }
