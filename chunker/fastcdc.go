package chunker

// Boundary returns the length of the first chunk of data under p.
//
// The cut rule (part of the on-disk format) is FastCDC with normalized
// chunking, level 2:
//
//   - the first Min bytes are never a cut point and are not hashed;
//   - from offset Min the gear hash starts at 0 and is updated per byte as
//     h = h<<1 + gear[b];
//   - after hashing the byte at offset i, the chunk ends after it (length
//     i+1) if h&strict == 0 for i < Avg, or h&loose == 0 for i >= Avg,
//     where strict has the top log2(Avg)+2 bits set and loose the top
//     log2(Avg)-2 bits;
//   - a chunk that reaches Max bytes is cut there.
//
// If no cut point is found, Boundary returns min(len(data), Max): when data is
// shorter than Max the caller decides whether more data is coming (then it
// must call again with at least Max bytes or the end of the stream) or
// whether this is the last chunk. Boundary panics if p is invalid; check
// Params.Validate first.
func Boundary(data []byte, p Params) int {
	if err := p.Validate(); err != nil {
		panic(err)
	}
	if len(data) <= p.Min {
		return len(data)
	}
	end := min(len(data), p.Max)
	normal := min(end, p.Avg)
	strict, loose := p.masks()

	var h uint64
	// Ranging over re-sliced windows keeps the loops free of bounds checks.
	for i, b := range data[p.Min:normal] {
		h = h<<1 + gear[b]
		if h&strict == 0 {
			return p.Min + i + 1
		}
	}
	for i, b := range data[normal:end] {
		h = h<<1 + gear[b]
		if h&loose == 0 {
			return normal + i + 1
		}
	}
	return end
}
