// Package disk reads the geometry and partition table of a raw disk image
// (GPT, MBR with extended/logical partitions, or none) with every on-disk
// field kept, and probes each partition's filesystem by its magic numbers.
//
// Policy on bad input: Read returns an error when it cannot describe the disk
// faithfully (image too small for the table it claims, a partition that ends
// past the end of the image, a GPT whose primary and backup are both bad, an
// absurd GPT entry array). It records a warning in Layout.Warnings and carries
// on when the layout is still usable: primary GPT bad but backup good (the
// backup is used and GPT.FromBackup is set), backup GPT bad or disagreeing,
// hybrid or missing protective MBR, overlapping partitions, partitions outside
// the GPT usable range, and a broken or looping EBR chain (logical partitions
// found before the break are kept). Read never panics.
//
// Detection order: a valid GPT (512-byte, then 4096-byte sectors; a GPT whose
// primary is wiped counts only when the MBR has an 0xEE entry), then a
// filesystem at offset 0 (so a FAT superfloppy or an isohybrid ISO is Kind
// "none", not an MBR), then an MBR whose boot flags are all 0x00/0x80 (as in
// Linux). Anything else is Kind "none" with an unknown filesystem. Partitions
// are numbered as Linux numbers them: GPT by entry slot, MBR primaries 1-4 by
// slot, logical partitions from 5 in chain order; an entry counts when its
// size is non-zero, whatever its type.
//
// The parsing is our own; go-diskfs v1.9.4 is the cross-check in the tests.
// It hides most GPT header fields and the MBR boot code, needs a seekable
// backend.File rather than an io.ReaderAt, has no logical (EBR) partitions,
// rejects GPT headers larger than 92 bytes and panics on an absurd entry count.
package disk
