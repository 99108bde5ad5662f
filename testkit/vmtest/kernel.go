package vmtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"mis/disk"
)

// KernelFromImage copies the newest /boot/vmlinuz-* and its matching
// /boot/initrd.img-* out of the disk image img into dir and returns their
// paths. It reads the first ext2/3/4 partition that has such a pair with
// debugfs (no mount, so img may be a read-only or FUSE file).
func KernelFromImage(img, dir string) (kernel, initrd string, err error) {
	if strings.Contains(img, "?") {
		return "", "", fmt.Errorf("vmtest: image path %q contains '?', which debugfs reads as options", img)
	}
	parts, err := extPartitions(img)
	if err != nil {
		return "", "", err
	}
	var tried []string
	for _, p := range parts {
		dev := fmt.Sprintf("%s?offset=%d", img, p.Start)
		boot, err := listBoot(dev)
		if err != nil {
			return "", "", fmt.Errorf("vmtest: %s partition %d: %w", img, p.Index, err)
		}
		release := newestPair(boot)
		if release == "" {
			tried = append(tried, fmt.Sprintf("p%d", p.Index))
			continue
		}
		kernel = filepath.Join(dir, "vmlinuz-"+release)
		initrd = filepath.Join(dir, "initrd.img-"+release)
		for _, f := range []struct{ name, out string }{{"vmlinuz-" + release, kernel}, {"initrd.img-" + release, initrd}} {
			if err := dump(dev, "/boot/"+f.name, f.out, boot[f.name]); err != nil {
				return "", "", fmt.Errorf("vmtest: %s partition %d: %w", img, p.Index, err)
			}
		}
		return kernel, initrd, nil
	}
	return "", "", fmt.Errorf("vmtest: %s: no ext partition with /boot/vmlinuz-* and a matching /boot/initrd.img-* (looked in %v)", img, tried)
}

// extPartitions lists the partitions of img that hold ext2/3/4.
func extPartitions(img string) ([]disk.Partition, error) {
	f, err := os.Open(img)
	if err != nil {
		return nil, fmt.Errorf("vmtest: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("vmtest: %w", err)
	}
	l, err := disk.Read(f, fi.Size())
	if err != nil {
		return nil, fmt.Errorf("vmtest: %s: %w", img, err)
	}
	var ext []disk.Partition
	for _, p := range l.Partitions {
		if p.Filesystem == disk.FSExt {
			ext = append(ext, p)
		}
	}
	if len(ext) == 0 {
		return nil, fmt.Errorf("vmtest: %s has no ext2/3/4 partition", img)
	}
	return ext, nil
}

// listBoot returns the regular files in /boot of dev, name to size.
func listBoot(dev string) (map[string]int64, error) {
	out, err := debugfs(dev, "ls -p /boot")
	if err != nil {
		return nil, err
	}
	files := map[string]int64{}
	// ls -p prints /inode/mode/uid/gid/name/size/ per entry.
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(strings.TrimSpace(line), "/")
		if len(f) != 8 || f[0] != "" || !strings.HasPrefix(f[2], "100") {
			continue
		}
		size, err := strconv.ParseInt(f[6], 10, 64)
		if err != nil {
			continue
		}
		files[f[5]] = size
	}
	return files, nil
}

// newestPair picks the highest release with both a kernel and an initrd.
func newestPair(boot map[string]int64) string {
	var releases []string
	for name := range boot {
		if r, ok := strings.CutPrefix(name, "vmlinuz-"); ok {
			if _, ok := boot["initrd.img-"+r]; ok {
				releases = append(releases, r)
			}
		}
	}
	if len(releases) == 0 {
		return ""
	}
	sort.Slice(releases, func(i, j int) bool { return versionLess(releases[i], releases[j]) })
	return releases[len(releases)-1]
}

// versionLess compares releases like "6.1.0-9-amd64" < "6.1.0-10-amd64":
// digit runs by value, the rest bytewise.
func versionLess(a, b string) bool {
	for a != "" && b != "" {
		na, ra := leadingNumber(a)
		nb, rb := leadingNumber(b)
		switch {
		case na >= 0 && nb >= 0:
			if na != nb {
				return na < nb
			}
			a, b = ra, rb
		case a[0] != b[0]:
			return a[0] < b[0]
		default:
			a, b = a[1:], b[1:]
		}
	}
	return len(a) < len(b)
}

func leadingNumber(s string) (int64, string) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return -1, s
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return -1, s
	}
	return n, s[i:]
}

// dump copies one file out with debugfs and checks it arrived whole: debugfs
// exits 0 even when a request fails.
func dump(dev, path, out string, size int64) error {
	os.Remove(out)
	if _, err := debugfs(dev, fmt.Sprintf("dump %q %q", path, out)); err != nil {
		return err
	}
	fi, err := os.Stat(out)
	if err != nil {
		return fmt.Errorf("debugfs dump %s: nothing written: %w", path, err)
	}
	if fi.Size() != size {
		return fmt.Errorf("debugfs dump %s: got %d bytes, want %d", path, fi.Size(), size)
	}
	return nil
}

// debugfs runs one read-only debugfs request and returns its output.
func debugfs(dev, request string) (string, error) {
	cmd := exec.Command("debugfs", "-R", request, dev)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("debugfs -R %q %s: %v: %s", request, dev, err, strings.TrimSpace(stderr.String()))
	}
	return out.String(), nil
}

// ReadGuestFile returns the content of path in ext partition number part
// (as Linux numbers it: 2 for /dev/vda2) of the disk image img, read with
// debugfs, or an error naming what is missing.
func ReadGuestFile(img string, part int, path string) ([]byte, error) {
	parts, err := extPartitions(img)
	if err != nil {
		return nil, err
	}
	for _, p := range parts {
		if p.Index != part {
			continue
		}
		dev := fmt.Sprintf("%s?offset=%d", img, p.Start)
		cmd := exec.Command("debugfs", "-R", fmt.Sprintf("cat %q", path), dev)
		var out, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("vmtest: debugfs cat %s in %s: %v: %s", path, dev, err, stderr.String())
		}
		// debugfs reports a missing file on stderr and still exits 0.
		if msg := stderr.String(); strings.Contains(msg, "not found") || strings.Contains(msg, "Is a directory") {
			return nil, fmt.Errorf("vmtest: %s in %s partition %d: %s", path, img, part, strings.TrimSpace(msg))
		}
		return out.Bytes(), nil
	}
	return nil, fmt.Errorf("vmtest: %s has no ext partition %d", img, part)
}
