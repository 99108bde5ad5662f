package chunker

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParamsValidate(t *testing.T) {
	good := []Params{DefaultParams(), small, {Min: 64, Avg: 128, Max: 129}, {Min: 1 << 20, Avg: 4 << 20, Max: 16 << 20}}
	for _, p := range good {
		if err := p.Validate(); err != nil {
			t.Errorf("%v: unexpected error %v", p, err)
		}
	}
	bad := map[string]Params{
		"min too small":  {Min: 63, Avg: 1024, Max: 4096},
		"max too large":  {Min: 1024, Avg: 4096, Max: 16<<20 + 1},
		"avg not pow2":   {Min: 1024, Avg: 3000, Max: 8192},
		"avg zero":       {Min: 1024, Avg: 0, Max: 8192},
		"avg negative":   {Min: 1024, Avg: -4096, Max: 8192},
		"min == avg":     {Min: 4096, Avg: 4096, Max: 8192},
		"avg == max":     {Min: 1024, Avg: 4096, Max: 4096},
		"min > max":      {Min: 8192, Avg: 4096, Max: 2048},
		"zero value":     {},
		"negative max":   {Min: 1024, Avg: 4096, Max: -1},
		"avg above max ": {Min: 1024, Avg: 1 << 24, Max: 1 << 23},
	}
	for name, p := range bad {
		err := p.Validate()
		if err == nil {
			t.Errorf("%s (%v): accepted", name, p)
			continue
		}
		if !strings.Contains(err.Error(), p.String()) {
			t.Errorf("%s: error %q does not name the params", name, err)
		}
		// New must report the problem through Next rather than panic.
		if _, nerr := New(strings.NewReader("data"), p).Next(); nerr == nil {
			t.Errorf("%s: New(...).Next() accepted bad params", name)
		}
	}
}

func TestBoundaryPanicsOnBadParams(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Boundary accepted invalid params")
		}
	}()
	Boundary(make([]byte, 100), Params{Min: 10, Avg: 20, Max: 30})
}

func TestParamsJSON(t *testing.T) {
	b, err := json.Marshal(DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"min":16384,"avg":65536,"max":262144}`; string(b) != want {
		t.Fatalf("JSON %s, want %s", b, want)
	}
	var p Params
	if err := json.Unmarshal(b, &p); err != nil || p != DefaultParams() {
		t.Fatalf("round trip gave %v, %v", p, err)
	}
}
