package layer

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"mis/repo"
)

// Drop removes version id with every tag naming it, in one commit, as
// Remove does for its last tag: the versions whose layers rest on it are
// rebased first (so its own manifest must still be readable when any
// rest on it). verify --repair --drop-broken uses it for versions whose
// data is gone; they may have no tag left at all.
func Drop(ctx context.Context, w *repo.Writer, id string) (*Removed, error) {
	out := &Removed{ID: id, VersionRemoved: true}
	var v *Version
	var all []*Version
	var tags [][]byte
	err := w.View(ctx, func(tx *repo.Tx) error {
		var err error
		if v, err = Get(tx, id); err != nil {
			return err
		}
		if err := tx.Iterate([]byte("tag/"), func(key, val []byte) error {
			if string(val) == id {
				tags = append(tags, append([]byte(nil), key...))
				out.OtherTags = append(out.OtherTags, strings.Replace(string(key[len("tag/"):]), "\x00", ":", 1))
			}
			return nil
		}); err != nil {
			return err
		}
		all, err = Versions(tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(out.OtherTags)
	if len(out.OtherTags) > 0 {
		out.Ref, _ = ParseRef(out.OtherTags[0])
	}
	for _, c := range all {
		if c.Parent == id {
			out.Children = append(out.Children, c.ID)
		}
	}
	// Only versions resting on it need its chain: a broken version on top
	// of an unreadable one drops without reading anything.
	var updates []*Version
	for _, c := range all {
		if c.Base == id {
			updates, out.Rebased, err = rebaseDependents(ctx, w, v, all)
			if err != nil {
				return nil, fmt.Errorf("rebase the versions built on version %s: %w", id, err)
			}
			break
		}
	}
	if err := w.RemoveRecordFile(recordKind, recordFileName(id)); err != nil {
		return nil, err
	}
	err = w.Commit(ctx, func(tx *repo.Tx) error {
		for _, k := range tags {
			got, err := tx.Get(k)
			if err != nil || string(got) != id {
				return fmt.Errorf("the tags of version %s changed while it was being removed", id)
			}
			if err := tx.Delete(k); err != nil {
				return err
			}
		}
		if err := tx.Delete(versionKey(id)); err != nil {
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
