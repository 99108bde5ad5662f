package layer

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"mis/chunker"
	"mis/repo"
)

// Tag makes dst name the version src names. Nothing is copied: a tag is a
// key pointing at a version id. dst must not exist.
func Tag(ctx context.Context, w *repo.Writer, src, dst Ref) (*Version, error) {
	var v *Version
	err := w.Update(ctx, func(tx *repo.Tx) error {
		var err error
		if v, err = Resolve(tx, src); err != nil {
			return err
		}
		if err := checkFree(tx, dst); err != nil {
			return err
		}
		return tx.Put(tagKey(dst), []byte(v.ID))
	})
	return v, err
}

// Removed says what Remove did.
type Removed struct {
	Ref            Ref      `json:"ref"`
	ID             string   `json:"id"`
	VersionRemoved bool     `json:"version_removed"` // no tag pointed at it any more
	OtherTags      []string `json:"other_tags,omitempty"`
	// Children are versions whose Parent is the removed version; their
	// Parent field now names a version that no longer exists.
	Children []string `json:"children,omitempty"`
	// Rebased are the versions whose layers rested on the removed
	// version: their layers now rest on its base, or they are stored
	// whole, so they stay readable.
	Rebased []string `json:"rebased,omitempty"`
}

// Remove deletes the tag r, and the version record when no other tag
// points at it. The versions whose layers rest on a removed version are
// rebased first: their new manifest streams are written, then one commit
// deletes the tag and record and points them at their new streams, so a
// crash at any moment leaves every version readable. Chunks are not
// deleted: gc frees them.
func Remove(ctx context.Context, w *repo.Writer, r Ref) (*Removed, error) {
	out := &Removed{Ref: r}
	var v *Version
	var all []*Version
	err := w.View(ctx, func(tx *repo.Tx) error {
		var err error
		if v, err = Resolve(tx, r); err != nil {
			return err
		}
		out.ID = v.ID
		err = tx.Iterate([]byte("tag/"), func(key, val []byte) error {
			if string(val) == v.ID && string(key) != string(tagKey(r)) {
				out.OtherTags = append(out.OtherTags, strings.Replace(string(key[len("tag/"):]), "\x00", ":", 1))
			}
			return nil
		})
		if err != nil {
			return err
		}
		all, err = Versions(tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, c := range all {
		if c.Parent == v.ID {
			out.Children = append(out.Children, c.ID)
		}
	}
	var updates []*Version
	if len(out.OtherTags) == 0 {
		out.VersionRemoved = true
		if updates, out.Rebased, err = rebaseDependents(ctx, w, v, all); err != nil {
			return nil, fmt.Errorf("rebase the versions built on %s: %w", r, err)
		}
	}
	if out.VersionRemoved {
		// The file goes before the record (records.go).
		if err := w.RemoveRecordFile(recordKind, recordFileName(v.ID)); err != nil {
			return nil, err
		}
	}
	err = w.Commit(ctx, func(tx *repo.Tx) error {
		// We hold the writer lock, so nothing changed since the plan;
		// checked anyway because a wrong rebase would lose versions.
		id, err := tx.Get(tagKey(r))
		if err != nil || string(id) != v.ID {
			return fmt.Errorf("%s changed while it was being removed", r)
		}
		if err := tx.Delete(tagKey(r)); err != nil {
			return err
		}
		if !out.VersionRemoved {
			return nil
		}
		if err := tx.Delete(versionKey(v.ID)); err != nil {
			return err
		}
		for _, u := range updates {
			if err := putRecord(tx, u); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	writeRecordFiles(w, updates...)
	return out, nil
}

// HistoryEntry is one tag of a name with its version.
type HistoryEntry struct {
	Ref     Ref      `json:"-"`
	Name    string   `json:"ref"`
	Version *Version `json:"version"`
	// ParentRef names the parent as NAME:TAG when it is tagged, else by id;
	// empty without a parent.
	ParentRef string `json:"parent_ref,omitempty"`
}

// History returns every tag of name with its version, oldest version first.
func History(tx *repo.Tx, name string) ([]HistoryEntry, error) {
	tags, err := List(tx)
	if err != nil {
		return nil, err
	}
	byID := map[string]string{}
	for _, t := range tags {
		if _, ok := byID[t.Version.ID]; !ok {
			byID[t.Version.ID] = t.Ref.String()
		}
	}
	var out []HistoryEntry
	for _, t := range tags {
		if t.Ref.Name != name {
			continue
		}
		e := HistoryEntry{Ref: t.Ref, Name: t.Ref.String(), Version: t.Version}
		if p := t.Version.Parent; p != "" {
			e.ParentRef = byID[p]
			if e.ParentRef == "" {
				e.ParentRef = p
				if _, err := Get(tx, p); errors.Is(err, repo.ErrNotFound) {
					e.ParentRef = p + " (removed)"
				}
			}
		}
		out = append(out, e)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Version, out[j].Version
		if !a.Created.Equal(b.Created) {
			return a.Created.Before(b.Created)
		}
		return out[i].Ref.Tag < out[j].Ref.Tag
	})
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: %w", name, ErrNotFound)
	}
	return out, nil
}

// LiveChunks enumerates every chunk any version uses, for repo.Writer.GC:
// each version's own stored stream and the refs that stream carries (see
// ownRefs), without resolving chains. It fails when a stream cannot be
// read or a layer's base is missing: gc must not delete the chunks of a
// version it could not see.
func LiveChunks(ctx context.Context, r *repo.Repo) func(yield func(chunker.ID) error) error {
	return func(yield func(chunker.ID) error) error {
		versions, names, err := versionsAndNames(ctx, r)
		if err != nil {
			return err
		}
		ids := map[string]bool{}
		for _, v := range versions {
			ids[v.ID] = true
		}
		var problems []string
		for _, v := range versions {
			if v.Base != "" && !ids[v.Base] {
				problems = append(problems, fmt.Sprintf("%s: layer base %s is missing", ownerName(v, names), v.Base))
			}
			if err := ownRefs(ctx, r, v, yield); err != nil {
				problems = append(problems, fmt.Sprintf("%s: cannot read manifest: %v", ownerName(v, names), err))
			}
		}
		if len(problems) > 0 {
			return fmt.Errorf("refusing to collect garbage: %s (run mis verify)", strings.Join(problems, "; "))
		}
		return nil
	}
}
