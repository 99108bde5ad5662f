package clone

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"os"
	"sync/atomic"
)

// BlockSize is the copy-on-write granularity.
const BlockSize = 4096

// mapPageBytes is the unit in which a map is written back: one page of
// the map file covers 32768 blocks (128 MiB of disk).
const mapPageBytes = 4096

const wordsPerPage = mapPageBytes / 8

// blockMap is one delta's "block present" bits. Bits are set with atomic
// operations so readers need no lock; they are never cleared.
type blockMap struct {
	words  []uint64
	blocks int64
	dirty  []atomic.Bool // per map page: bits set since the last persist
	count  atomic.Int64  // bits set
}

func blocksFor(size int64) int64 { return (size + BlockSize - 1) / BlockSize }

func newBlockMap(diskSize int64) *blockMap {
	n := blocksFor(diskSize)
	words := (n + 63) / 64
	pages := (words + wordsPerPage - 1) / wordsPerPage
	return &blockMap{words: make([]uint64, words), blocks: n, dirty: make([]atomic.Bool, pages)}
}

// mapFileSize is the length of a map file for a disk of diskSize bytes.
func mapFileSize(diskSize int64) int64 { return int64(len(newBlockMap(diskSize).words)) * 8 }

// loadBlockMap reads a map file; a missing or short file reads as zeros
// (a delta that never persisted those pages).
func loadBlockMap(path string, diskSize int64) (*blockMap, error) {
	m := newBlockMap(diskSize)
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return m, nil
	}
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > int64(len(m.words))*8 {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d a %d-byte disk needs", path, len(data), len(m.words)*8, diskSize)
	}
	var n int64
	for i := 0; i+8 <= len(data); i += 8 {
		w := binary.LittleEndian.Uint64(data[i:])
		m.words[i/8] = w
		n += int64(bits.OnesCount64(w))
	}
	if last := m.blocks % 64; last != 0 && m.words[len(m.words)-1]>>last != 0 {
		return nil, fmt.Errorf("%s: bits set beyond the disk's last block", path)
	}
	m.count.Store(n)
	return m, nil
}

func (m *blockMap) has(b int64) bool {
	return atomic.LoadUint64(&m.words[b/64])&(1<<(b%64)) != 0
}

// set marks block b present and its map page dirty.
func (m *blockMap) set(b int64) {
	w := &m.words[b/64]
	bit := uint64(1) << (b % 64)
	if atomic.OrUint64(w, bit)&bit == 0 {
		m.count.Add(1)
		m.dirty[b/64/wordsPerPage].Store(true)
	}
}

// anyIn reports whether any block in [from, to) is present.
func (m *blockMap) anyIn(from, to int64) bool {
	for b := from; b < to; {
		if b%64 == 0 && to-b >= 64 {
			if atomic.LoadUint64(&m.words[b/64]) != 0 {
				return true
			}
			b += 64
			continue
		}
		if m.has(b) {
			return true
		}
		b++
	}
	return false
}

// mapPage is a snapshot of one page of the map, ready to write.
type mapPage struct {
	off  int64
	data []byte
}

// takeDirty snapshots the dirty pages and clears their flags. Bits set
// after the snapshot stay dirty for the next persist.
func (m *blockMap) takeDirty() []mapPage {
	var out []mapPage
	for p := range m.dirty {
		if !m.dirty[p].Swap(false) {
			continue
		}
		from := p * wordsPerPage
		to := min(from+wordsPerPage, len(m.words))
		buf := make([]byte, (to-from)*8)
		for i := from; i < to; i++ {
			binary.LittleEndian.PutUint64(buf[(i-from)*8:], atomic.LoadUint64(&m.words[i]))
		}
		out = append(out, mapPage{off: int64(from) * 8, data: buf})
	}
	return out
}

// redirty puts pages back after a failed persist.
func (m *blockMap) redirty(pages []mapPage) {
	for _, p := range pages {
		m.dirty[p.off/mapPageBytes].Store(true)
	}
}
