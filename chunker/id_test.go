package chunker

import (
	"strings"
	"testing"

	"github.com/zeebo/blake3"
)

func TestSumKnownVectors(t *testing.T) {
	// Reference values from the BLAKE3 specification / b3sum.
	vectors := map[string]string{
		"":    "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
		"abc": "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85",
	}
	for in, want := range vectors {
		if got := Sum([]byte(in)).String(); got != want {
			t.Errorf("Sum(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestSumSizes(t *testing.T) {
	// Sizes straddle BLAKE3's 1 KiB chunk, where the library switches from
	// a single compression to its tree code, and its 8 KiB batch. The
	// expected values come from the library's streaming hasher.
	data := mixedData(23, 300<<10)
	for _, n := range []int{0, 1, 1023, 1024, 1025, 8191, 8192, 8193, 65536, 100000, 300 << 10} {
		h := blake3.New()
		h.Write(data[:n])
		var want ID
		h.Sum(want[:0])
		if got := Sum(data[:n]); got != want {
			t.Errorf("Sum(%d bytes) = %s, want %s", n, got.Short(), want.Short())
		}
	}
}

func TestSumDoesNotAllocate(t *testing.T) {
	data := mixedData(29, 64<<10)
	if n := testing.AllocsPerRun(50, func() { Sum(data) }); n != 0 {
		t.Fatalf("Sum allocates %.1f times per call", n)
	}
}

func TestIDText(t *testing.T) {
	id := Sum([]byte("abc"))
	s := id.String()
	if len(s) != 64 || s != strings.ToLower(s) {
		t.Fatalf("String() = %q", s)
	}
	if id.Short() != s[:12] {
		t.Fatalf("Short() = %q, want %q", id.Short(), s[:12])
	}
	back, err := ParseID(s)
	if err != nil || back != id {
		t.Fatalf("ParseID(String()) = %v, %v", back, err)
	}
	if id.IsZero() || !(ID{}).IsZero() {
		t.Fatal("IsZero wrong")
	}
	for _, bad := range []string{"", s[:63], s + "0", strings.Replace(s, s[:1], "g", 1)} {
		if _, err := ParseID(bad); err == nil || !strings.Contains(err.Error(), "chunk id") {
			t.Errorf("ParseID(%q) error = %v", bad, err)
		}
	}
}
