package fresh

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"

	"mis/disk"
	"mis/manifest"
)

// writeTable writes the partition table with sfdisk. sfdisk is the
// reference writer of both formats (GPT headers, backup at the new end,
// CRCs, protective MBR, the EBR chain of logical partitions); with every
// id given in the script its output is deterministic, and the tests check
// it against sfdisk --dump of the original.
func writeTable(ctx context.Context, path string, m *manifest.Manifest, p *plan) error {
	if m.Layout.Kind == "none" {
		return nil
	}
	script, err := sfdiskScript(m, p)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "sfdisk", "--no-reread", "--no-tell-kernel", "--wipe", "never", "--wipe-partitions", "never", "-q", path)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("partition table: %w\nscript:\n%s", toolError("sfdisk", err, out), script)
	}
	return nil
}

// sfdiskScript renders the layout as an sfdisk script. Partitions are named
// "dN" so sfdisk puts each into table slot N, keeping gaps in the numbering.
func sfdiskScript(m *manifest.Manifest, p *plan) (string, error) {
	var b strings.Builder
	ss := int64(m.Layout.SectorSize)
	if ss == 0 {
		ss = 512
	}
	switch m.Layout.Kind {
	case "gpt":
		fmt.Fprintf(&b, "label: gpt\nlabel-id: %s\nunit: sectors\nsector-size: %d\n", strings.ToUpper(m.Layout.DiskGUID), ss)
		var l disk.Layout
		if err := json.Unmarshal(m.Layout.Detail, &l); err != nil || l.GPT == nil {
			return "", fmt.Errorf("partition table: the manifest has no GPT header record (%v)", err)
		}
		h := l.GPT.GPTHeader
		if h.EntrySize != 128 {
			return "", fmt.Errorf("partition table: GPT entries of %d bytes cannot be written by sfdisk (only 128)", h.EntrySize)
		}
		// The usable range keeps its distance from the disk's end, so the
		// backup header moves to the new end.
		last := int64(h.LastUsableLBA) + p.grow/ss
		fmt.Fprintf(&b, "first-lba: %d\nlast-lba: %d\ntable-length: %d\n\n", h.FirstUsableLBA, last, h.NumEntries)
	case "mbr":
		fmt.Fprintf(&b, "label: dos\nlabel-id: 0x%08x\nunit: sectors\nsector-size: %d\n\n", m.Layout.Signature, ss)
	}
	for _, pp := range p.parts {
		part := pp.part
		if part.Start%ss != 0 || pp.newSize%ss != 0 {
			return "", fmt.Errorf("partition %d: start %d or size %d is not a multiple of the %d-byte sector", part.Index, part.Start, pp.newSize, ss)
		}
		fmt.Fprintf(&b, "d%d : start=%d, size=%d", part.Index, part.Start/ss, pp.newSize/ss)
		switch m.Layout.Kind {
		case "gpt":
			fmt.Fprintf(&b, ", type=%s, uuid=%s", strings.ToUpper(part.Type), strings.ToUpper(part.GUID))
			if part.Name != "" {
				if strings.ContainsAny(part.Name, "\"\n") {
					return "", fmt.Errorf("partition %d: name %q has a character sfdisk scripts cannot carry", part.Index, part.Name)
				}
				fmt.Fprintf(&b, ", name=%q", part.Name)
			}
			if part.Attributes != 0 {
				attrs, err := gptAttrs(part.Attributes)
				if err != nil {
					return "", fmt.Errorf("partition %d: %w", part.Index, err)
				}
				fmt.Fprintf(&b, ", attrs=%q", attrs)
			}
		case "mbr":
			fmt.Fprintf(&b, ", type=%s", strings.TrimPrefix(part.Type, "0x"))
			if part.Bootable {
				b.WriteString(", bootable")
			}
		}
		b.WriteByte('\n')
	}
	return b.String(), nil
}

// gptAttrs spells GPT attribute bits the way sfdisk reads them: the three
// named bits and GUID:N for the type-specific bits 48..63. Bits 3..47 are
// reserved by the spec and sfdisk has no way to set them.
func gptAttrs(a uint64) (string, error) {
	var parts []string
	names := []string{"RequiredPartition", "NoBlockIOProtocol", "LegacyBIOSBootable"}
	for bit, name := range names {
		if a&(1<<bit) != 0 {
			parts = append(parts, name)
		}
	}
	var guid []string
	for bit := 48; bit < 64; bit++ {
		if a&(1<<bit) != 0 {
			guid = append(guid, fmt.Sprint(bit))
		}
	}
	if len(guid) > 0 {
		parts = append(parts, "GUID:"+strings.Join(guid, ","))
	}
	if a&(1<<48-1)&^7 != 0 {
		return "", fmt.Errorf("GPT attribute bits %#x are reserved and cannot be written by sfdisk", a&(1<<48-1)&^7)
	}
	return string(bytes.TrimSpace([]byte(strings.Join(parts, " ")))), nil
}
