package catalog

import (
	"strings"
	"testing"
	"time"

	"mis/layer"
)

func TestDecide(t *testing.T) {
	day := func(s string) time.Time {
		tm, err := time.ParseInLocation("2006-01-02 15:04", s, time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	var tags []layer.Tagged
	add := func(tag, id, created string) {
		tags = append(tags, layer.Tagged{Ref: layer.Ref{Name: "img", Tag: tag}, Version: &layer.Version{ID: id, Created: day(created)}})
	}
	add("a", "1", "2025-01-01 10:00") // yearly 2025
	add("b", "2", "2026-11-02 10:00") // monthly 2026-11
	add("c", "3", "2026-12-01 09:00")
	add("d", "4", "2026-12-01 18:00") // daily 2026-12-01, monthly 2026-12
	add("e", "5", "2026-12-06 10:00") // daily 2026-12-06
	add("e2", "5", "2026-12-06 10:00")
	add("f", "6", "2026-12-07 08:00")
	add("release-1", "7", "2020-05-05 00:00")
	add("g", "8", "2026-12-07 09:00")
	holders := []Holder{{Kind: KindDiskClone, Name: "vm", Version: "3"}}

	got := map[string]string{}
	for _, d := range decide(tags, Policy{Last: 1, Daily: 3, Monthly: 2, Yearly: 2, Tags: []string{"release-*"}, Location: time.UTC}, holders) {
		got[d.Ref[len("img:"):]] = strings.Join(d.Reasons, "; ")
	}
	want := map[string]string{
		"g":         "last; daily 2026-12-07; monthly 2026-12; yearly 2026",
		"f":         "",
		"e":         "daily 2026-12-06",
		"e2":        "another tag of a kept version",
		"d":         "daily 2026-12-01",
		"c":         "held by disk vm",
		"b":         "monthly 2026-11",
		"a":         "yearly 2025",
		"release-1": "tag release-*",
	}
	for tag, w := range want {
		if got[tag] != w {
			t.Errorf("%s: kept for %q, want %q", tag, got[tag], w)
		}
	}
	if !(Policy{}).Empty() || (Policy{Tags: []string{"x"}}).Empty() {
		t.Error("Policy.Empty")
	}
}
