// Package mountinfo reads /proc/self/mountinfo, the kernel's mount table
// for this process. It is the one parser of it: mountfs finds and
// unmounts FUSE mounts, treeclone finds overlays over a clone's upper,
// fixtures unmounts what a killed build left behind.
package mountinfo

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Path is the file Read parses.
const Path = "/proc/self/mountinfo"

// Mount is one line of mountinfo (see proc(5)):
//
//	id parent major:minor root mountpoint options [optional...] - fstype source superoptions
//
// Paths and the source have the kernel's octal escapes (\040 for a
// space...) undone. Options keep overlayfs's own backslash escapes of
// commas (see SplitOptions).
type Mount struct {
	ID, Parent   int
	Major, Minor int    // st_dev of the mount; for FUSE, Minor names the connection in /sys/fs/fuse/connections
	Root         string // the mounted directory inside its filesystem
	Dir          string // mount point
	Options      string // per-mount options (rw, nosuid...)
	FSType       string // e.g. "fuse.mis", "overlay"
	Source       string // e.g. "mis:debian:12"
	SuperOptions string // per-superblock options (overlay: lowerdir=...,upperdir=...)
}

// Read returns every mount of /proc/self/mountinfo, in the kernel's order
// (a mount stacked on another comes after it).
func Read() ([]Mount, error) {
	f, err := os.Open(Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ms, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Path, err)
	}
	return ms, nil
}

// Parse reads mountinfo lines from r. A line it cannot parse is an error.
func Parse(r io.Reader) ([]Mount, error) {
	var out []Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if sc.Text() == "" {
			continue
		}
		m, err := ParseLine(sc.Text())
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// ParseLine parses one mountinfo line.
func ParseLine(line string) (Mount, error) {
	fields := strings.Fields(line)
	// Optional fields start at the seventh; "-" ends them.
	sep := -1
	for i := 6; i < len(fields); i++ {
		if fields[i] == "-" {
			sep = i
			break
		}
	}
	if sep < 0 || sep+2 >= len(fields) {
		return Mount{}, fmt.Errorf("cannot parse line %q", line)
	}
	var m Mount
	var err1, err2 error
	m.ID, err1 = strconv.Atoi(fields[0])
	m.Parent, err2 = strconv.Atoi(fields[1])
	maj, min, ok := strings.Cut(fields[2], ":")
	if err1 != nil || err2 != nil || !ok {
		return Mount{}, fmt.Errorf("cannot parse line %q", line)
	}
	m.Major, _ = strconv.Atoi(maj)
	m.Minor, _ = strconv.Atoi(min)
	m.Root = Unescape(fields[3])
	m.Dir = Unescape(fields[4])
	m.Options = fields[5]
	m.FSType = Unescape(fields[sep+1])
	m.Source = Unescape(fields[sep+2])
	if sep+3 < len(fields) {
		m.SuperOptions = Unescape(fields[sep+3])
	}
	return m, nil
}

// Unescape undoes the kernel's octal escapes (\040 for a space, \011 tab,
// \012 newline, \134 backslash).
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Option returns the value of key in a comma-separated option string
// such as SuperOptions ("upperdir" in "lowerdir=/a,upperdir=/b"), and
// whether it is there.
func Option(opts, key string) (string, bool) {
	for _, o := range SplitOptions(opts) {
		if v, ok := strings.CutPrefix(o, key+"="); ok {
			return v, true
		}
		if o == key {
			return "", true
		}
	}
	return "", false
}

// SplitOptions splits a comma-separated option string. A backslash takes
// the next byte literally, as overlayfs escapes commas in its paths.
func SplitOptions(s string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s):
			cur.WriteByte(s[i+1])
			i++
		case s[i] == ',':
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(s[i])
		}
	}
	return append(out, cur.String())
}
