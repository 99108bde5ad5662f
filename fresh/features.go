package fresh

import (
	"fmt"
	"strings"
)

// featureName is the mke2fs -O spelling of each ext feature bit.
var featureNames = [3]map[uint32]string{
	{ // compat
		0x1: "dir_prealloc", 0x2: "imagic_inodes", 0x4: "has_journal", 0x8: "ext_attr",
		0x10: "resize_inode", 0x20: "dir_index", 0x200: "sparse_super2", 0x400: "fast_commit",
		0x800: "stable_inodes", 0x1000: "orphan_file",
	},
	{ // incompat
		0x2: "filetype", 0x10: "meta_bg", 0x40: "extent", 0x80: "64bit", 0x100: "mmp",
		0x200: "flex_bg", 0x400: "ea_inode", 0x2000: "metadata_csum_seed", 0x4000: "large_dir",
		0x8000: "inline_data",
	},
	{ // ro_compat
		0x1: "sparse_super", 0x2: "large_file", 0x8: "huge_file", 0x10: "uninit_bg",
		0x20: "dir_nlink", 0x40: "extra_isize", 0x100: "quota", 0x200: "bigalloc",
		0x400: "metadata_csum", 0x2000: "project", 0x8000: "verity",
	},
}

// transientFeatures are state, not choices: a journal needing recovery,
// orphans being processed. A fresh filesystem has neither.
var transientFeatures = [3]uint32{0, 0x4, 0x10000}

// refusedFeatures cannot be rebuilt from a file tree.
var refusedFeatures = [3]map[uint32]string{
	{},
	{0x1: "compression", 0x8: "journal_dev (an external journal device)", 0x1000: "dirdata",
		0x10000: "encrypt (encrypted files cannot be read as a tree)", 0x20000: "casefold (not supported by fresh export yet)"},
	{0x1000: "read-only", 0x4000: "shared_blocks"},
}

// featureList returns the -O argument that gives exactly the features f:
// "none" first clears whatever the mke2fs defaults would add.
func featureList(f [3]uint32) (string, error) {
	names := []string{"none"}
	for w := range 3 {
		bits := f[w] &^ transientFeatures[w]
		for bit := uint32(1); bit != 0; bit <<= 1 {
			if bits&bit == 0 {
				continue
			}
			if why, ok := refusedFeatures[w][bit]; ok {
				return "", fmt.Errorf("the filesystem uses feature %s, which a fresh export cannot rebuild", why)
			}
			name, ok := featureNames[w][bit]
			if !ok {
				return "", fmt.Errorf("the filesystem uses unknown feature bit %#x (word %d)", bit, w)
			}
			names = append(names, name)
		}
	}
	return strings.Join(names, ","), nil
}
