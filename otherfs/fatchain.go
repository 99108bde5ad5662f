package otherfs

import (
	"encoding/binary"
	"fmt"
)

// checkFATChains refuses a FAT whose cluster chains loop. go-diskfs
// follows a chain until its end-of-chain mark with no step limit, so one
// loop would make it append cluster numbers forever.
func checkFATChains(src sectionStorage, bits int, fatOff int64, fatBytes, clusters uint32) error {
	fat := make([]byte, fatBytes)
	if _, err := src.ReadAt(fat, fatOff); err != nil {
		return fmt.Errorf("FAT at offset %d: %w", fatOff, err)
	}
	maxCluster := clusters + 1 // data clusters are numbered 2..clusters+1
	next := func(c uint32) uint32 {
		switch bits {
		case 12:
			i := c + c/2
			if int(i)+1 >= len(fat) {
				return 0
			}
			v := uint32(binary.LittleEndian.Uint16(fat[i:]))
			if c&1 == 1 {
				return v >> 4
			}
			return v & 0xfff
		case 16:
			if int(2*c)+1 >= len(fat) {
				return 0
			}
			return uint32(binary.LittleEndian.Uint16(fat[2*c:]))
		}
		if int(4*c)+3 >= len(fat) {
			return 0
		}
		return binary.LittleEndian.Uint32(fat[4*c:]) & 0x0fffffff
	}
	// Every cluster points to at most one next: walking from each cluster
	// and colouring the path finds any loop in linear time.
	const (
		unseen = iota
		onPath
		done
	)
	state := make([]uint8, maxCluster+1)
	var path []uint32
	for start := uint32(2); start <= maxCluster; start++ {
		path = path[:0]
		for c := start; c >= 2 && c <= maxCluster && state[c] != done; c = next(c) {
			if state[c] == onPath {
				return fmt.Errorf("FAT cluster chain through cluster %d loops", c)
			}
			state[c] = onPath
			path = append(path, c)
		}
		for _, c := range path {
			state[c] = done
		}
	}
	return nil
}
