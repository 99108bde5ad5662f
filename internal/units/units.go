// Package units reads and writes byte counts and durations the way mis
// shows them to people: binary units (64M, 1.5 GiB).
package units

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Bytes formats n bytes with a binary unit: 512 B, 1.5 KiB, 3.2 GiB.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Duration rounds d to hundredths of a second.
func Duration(d time.Duration) string { return d.Round(10 * time.Millisecond).String() }

// ParseSize reads a byte count with an optional K, M or G suffix (powers
// of 1024), as in 64M, 512K or 1GiB.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B")
	t = strings.TrimSuffix(t, "I")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult, t = 1<<10, t[:n-1]
		case 'M':
			mult, t = 1<<20, t[:n-1]
		case 'G':
			mult, t = 1<<30, t[:n-1]
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v < 0 {
		return 0, errors.New("want a size such as 64M, 512K or 1G, got " + strconv.Quote(s))
	}
	return v * mult, nil
}
