package vmtest

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
)

// FsckExt runs e2fsck -fn on every ext2/3/4 partition of img (read-only: it
// repairs nothing) and fails naming the first partition that is not clean,
// for instance because the guest did not shut down cleanly.
func FsckExt(img string) error {
	if strings.Contains(img, "?") {
		return fmt.Errorf("vmtest: image path %q contains '?', which e2fsck reads as options", img)
	}
	parts, err := extPartitions(img)
	if err != nil {
		return err
	}
	for _, p := range parts {
		dev := fmt.Sprintf("%s?offset=%d", img, p.Start)
		cmd := exec.Command("e2fsck", "-fn", dev)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("vmtest: e2fsck -fn on %s partition %d (offset %d): %v\n%s", img, p.Index, p.Start, err, out.String())
		}
	}
	return nil
}
