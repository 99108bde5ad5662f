package vmtest

import (
	"context"
	"fmt"
	"strings"
	"time"

	"mis/fixtures"
)

// Check asks the image's boot check for a file written from the guest.
type Check struct {
	Write   string // absolute path inside the guest; "" writes nothing
	Content string // one word: no spaces (the kernel command line splits on them)
	// Systemd runs the check as a unit of a full systemd boot instead of as
	// PID 1 (init=). Under TCG on a busy two-core machine that is about three
	// times slower (90 s against 30 s to power off), so the default is init=.
	Systemd bool
}

// Append is the kernel command line that runs the check.
func (k Check) Append() (string, error) {
	words := []string{fixtures.BootCheckInitAppend}
	if k.Systemd {
		words = []string{fixtures.BootCheckAppend}
	}
	if k.Write != "" {
		if !strings.HasPrefix(k.Write, "/") || strings.ContainsAny(k.Write, " \t\n\"") {
			return "", fmt.Errorf("vmtest: guest path %q must be absolute, without spaces or quotes", k.Write)
		}
		if k.Content == "" || strings.ContainsAny(k.Content, " \t\n\"") {
			return "", fmt.Errorf("vmtest: guest file content %q must be one word without spaces or quotes", k.Content)
		}
		words = append(words, fixtures.BootWriteParam+"="+k.Write, fixtures.BootContentParam+"="+k.Content)
	}
	return strings.Join(words, " "), nil
}

// Result is what a boot check showed.
type Result struct {
	Console string
	Release string // kernel release the guest printed
	Init    string // name of PID 1 in the guest ("systemd" or "mis-boot-check")
	Elapsed time.Duration
}

// BootCheck boots c with the image's boot check (its Append is added to
// c.Append) and fails unless the guest printed the boot marker and, when
// asked to write, confirmed the write. Elapsed is qemu's whole run: firmware,
// kernel, userspace and shutdown.
func BootCheck(ctx context.Context, c Config, k Check) (*Result, error) {
	extra, err := k.Append()
	if err != nil {
		return nil, err
	}
	c.Append = strings.TrimSpace(c.Append + " " + extra)
	start := time.Now()
	console, err := Boot(ctx, c)
	r := &Result{Console: console, Elapsed: time.Since(start)}
	if err != nil {
		return r, err
	}
	fields, ok := markerLine(console, fixtures.BootMarker)
	if !ok {
		return r, fmt.Errorf("vmtest: %s booted without printing %q; console ends:\n%s", c.Disk, fixtures.BootMarker, tail(console, 20))
	}
	if len(fields) > 0 {
		r.Release = fields[0]
	}
	if len(fields) > 1 {
		r.Init = strings.TrimPrefix(fields[1], "init=")
	}
	if k.Write != "" {
		if f, ok := markerLine(console, fixtures.BootWroteMarker); !ok || len(f) == 0 || f[0] != k.Write {
			return r, fmt.Errorf("vmtest: guest did not confirm writing %s; console ends:\n%s", k.Write, tail(console, 20))
		}
	}
	return r, nil
}

// markerLine finds the console line starting with marker (after any kernel
// timestamp or carriage return) and returns the words after the marker.
func markerLine(console, marker string) ([]string, bool) {
	for _, line := range strings.Split(console, "\n") {
		line = strings.TrimSpace(strings.ReplaceAll(line, "\r", ""))
		if i := strings.Index(line, marker+" "); i >= 0 {
			return strings.Fields(line[i+len(marker):]), true
		}
	}
	return nil, false
}
