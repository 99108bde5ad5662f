package catalog

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"time"

	"mis/layer"
	"mis/repo"
)

// Policy says which versions of an image to keep, as restic's forget does:
// the newest Last ones, the newest of each of the last Daily days (Weekly
// ISO weeks, Monthly months, Yearly years) that have a version, and every
// version with a tag matching one of Tags (shell patterns). A version any
// rule keeps is kept. Times are the versions' creation times in loc.
type Policy struct {
	Last, Daily, Weekly, Monthly, Yearly int
	Tags                                 []string
	Location                             *time.Location // default time.Local
}

// Empty reports whether the policy keeps nothing: forget refuses it
// rather than remove every version.
func (p Policy) Empty() bool {
	return p.Last <= 0 && p.Daily <= 0 && p.Weekly <= 0 && p.Monthly <= 0 && p.Yearly <= 0 && len(p.Tags) == 0
}

// Decision is what forget does with one tag of the image.
type Decision struct {
	Ref     string         `json:"ref"`
	Version *layer.Version `json:"version"`
	Keep    bool           `json:"keep"`
	Reasons []string       `json:"reasons,omitempty"` // why kept: "last", "daily 2026-12-07", "tag", "held by disk clone vm1"
}

// Forgotten is the outcome of Forget.
type Forgotten struct {
	Decisions []Decision     `json:"decisions"`
	Removed   []string       `json:"removed"` // refs removed (empty for a dry run)
	GC        *repo.GCReport `json:"gc,omitempty"`
}

// Forget removes the tags of image name that policy does not keep (a
// version held by a clone or a mount is always kept), then collects the
// garbage, all through writer w. With dryRun nothing changes.
func (c *Catalog) Forget(ctx context.Context, w *repo.Writer, name string, policy Policy, dryRun bool) (*Forgotten, error) {
	if policy.Empty() {
		return nil, errors.New("forget: no --keep rule given: refusing to remove every version (use mis rm for that)")
	}
	for _, t := range policy.Tags {
		if _, err := path.Match(t, ""); err != nil {
			return nil, fmt.Errorf("forget: --keep-tag %q: %w", t, err)
		}
	}
	var tags []layer.Tagged
	if err := w.View(ctx, func(tx *repo.Tx) error {
		all, err := layer.List(tx)
		for _, t := range all {
			if t.Ref.Name == name {
				tags = append(tags, t)
			}
		}
		return err
	}); err != nil {
		return nil, err
	}
	if len(tags) == 0 {
		return nil, fmt.Errorf("forget: no versions of %s: %w", name, layer.ErrNotFound)
	}
	holders, err := c.Holders()
	if err != nil {
		return nil, err
	}
	out := &Forgotten{Decisions: decide(tags, policy, holders)}
	if dryRun {
		return out, nil
	}
	for _, d := range out.Decisions {
		if d.Keep {
			continue
		}
		ref, _ := layer.ParseRef(d.Ref)
		if _, err := c.RemoveVersion(ctx, w, ref); err != nil {
			return out, fmt.Errorf("forget %s: %w", d.Ref, err)
		}
		out.Removed = append(out.Removed, d.Ref)
	}
	rep, err := c.GC(ctx, w, repo.GCOptions{})
	if err != nil {
		return out, fmt.Errorf("forget: versions removed, gc failed (run mis gc): %w", err)
	}
	out.GC = &rep
	return out, nil
}

// decide applies policy to the tags of one image, newest version first.
func decide(tags []layer.Tagged, p Policy, holders []Holder) []Decision {
	loc := p.Location
	if loc == nil {
		loc = time.Local
	}
	sort.SliceStable(tags, func(i, j int) bool {
		a, b := tags[i].Version, tags[j].Version
		if !a.Created.Equal(b.Created) {
			return a.Created.After(b.Created)
		}
		return tags[i].Ref.Tag < tags[j].Ref.Tag
	})
	ds := make([]Decision, len(tags))
	for i, t := range tags {
		ds[i] = Decision{Ref: t.Ref.String(), Version: t.Version}
	}
	keep := func(i int, why string) { ds[i].Keep = true; ds[i].Reasons = append(ds[i].Reasons, why) }
	// Version ids seen, so two tags of one version count once per rule.
	buckets := []struct {
		n      int
		label  string
		bucket func(time.Time) string
	}{
		{p.Last, "last", nil},
		{p.Daily, "daily", func(t time.Time) string { return t.Format("2006-01-02") }},
		{p.Weekly, "weekly", func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%d-W%02d", y, w) }},
		{p.Monthly, "monthly", func(t time.Time) string { return t.Format("2006-01") }},
		{p.Yearly, "yearly", func(t time.Time) string { return t.Format("2006") }},
	}
	for _, b := range buckets {
		left := b.n
		seen := map[string]bool{} // buckets (or version ids for "last") already kept
		for i, t := range tags {
			if left <= 0 {
				break
			}
			key := t.Version.ID
			why := b.label
			if b.bucket != nil {
				key = b.bucket(t.Version.Created.In(loc))
				why = b.label + " " + key
			}
			if seen[key] {
				if b.bucket == nil {
					keep(i, why) // another tag of a version already kept
				}
				continue
			}
			seen[key] = true
			keep(i, why)
			left--
		}
	}
	for i, t := range tags {
		for _, pat := range p.Tags {
			if ok, _ := path.Match(pat, t.Ref.Tag); ok {
				keep(i, "tag "+pat)
				break
			}
		}
		for _, h := range holders {
			if h.Version == t.Version.ID {
				keep(i, fmt.Sprintf("held by %s %s", h.Kind, h.Name))
			}
		}
	}
	// A version kept under one tag keeps its other tags of this image too:
	// forget removes versions, not names of kept versions.
	kept := map[string]bool{}
	for _, d := range ds {
		if d.Keep {
			kept[d.Version.ID] = true
		}
	}
	for i := range ds {
		if !ds[i].Keep && kept[ds[i].Version.ID] {
			keep(i, "another tag of a kept version")
		}
	}
	return ds
}
