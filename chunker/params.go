package chunker

import (
	"fmt"
	"math/bits"
)

// Limits on chunking parameters. MinLimit keeps the per-chunk index cost
// sane; MaxLimit bounds the memory a Chunker needs (2*Max).
const (
	MinLimit = 64
	MaxLimit = 16 << 20
)

// normLevel is the FastCDC normalization level: the mask used before Avg
// has normLevel more one-bits than log2(Avg), the mask used after Avg has
// normLevel fewer. It is part of the on-disk format.
const normLevel = 2

// Params are the chunk size bounds in bytes. Chunks are at least Min
// and at most Max bytes long (except the last chunk of a stream, which may be
// shorter than Min); Avg is the target size and must be a power of two.
// Params are part of a store's format: chunking the same data with
// different Params yields different chunks.
type Params struct {
	Min int `json:"min"`
	Avg int `json:"avg"`
	Max int `json:"max"`
}

// DefaultParams returns the parameters chosen by measurement; see the
// package documentation for the figures behind them.
func DefaultParams() Params {
	return Params{Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10}
}

// Validate reports whether p can be used for chunking.
func (p Params) Validate() error {
	switch {
	case p.Min < MinLimit:
		return fmt.Errorf("chunker: params %v: min %d is below %d", p, p.Min, MinLimit)
	case p.Max > MaxLimit:
		return fmt.Errorf("chunker: params %v: max %d is above %d", p, p.Max, MaxLimit)
	case p.Avg <= 0 || p.Avg&(p.Avg-1) != 0:
		return fmt.Errorf("chunker: params %v: avg %d is not a power of two", p, p.Avg)
	case !(p.Min < p.Avg && p.Avg < p.Max):
		return fmt.Errorf("chunker: params %v: need min < avg < max", p)
	}
	return nil
}

func (p Params) String() string {
	return fmt.Sprintf("min=%d avg=%d max=%d", p.Min, p.Avg, p.Max)
}

// masks returns the strict (before Avg) and loose (after Avg) cut masks.
// They select the top bits of the gear hash: a gear hash's high bits depend
// on up to the last 64 input bytes, its low bits only on the last few, so
// the high bits make the better fingerprint.
func (p Params) masks() (strict, loose uint64) {
	b := bits.TrailingZeros(uint(p.Avg))
	return topBits(b + normLevel), topBits(b - normLevel)
}

func topBits(n int) uint64 { return ^uint64(0) << (64 - n) }
