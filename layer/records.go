package layer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"sort"
	"strings"

	"mis/repo"
)

// Record files. Every version record is also kept as a small file,
// REPO/versions/<id>.json (repo's record files: written durably after the
// commit that makes the record visible, removed before the commit that
// deletes it), so that losing the metadata database does not lose the
// versions: verify --repair restores a record whose file survived, with
// the NAME:TAG it was created as. Tags added later (mis tag) live only in
// the database. The database stays the authority: a file that disagrees
// with its record is rewritten from it.

const recordKind = "versions"

func recordFileName(id string) string { return id + ".json" }

// writeRecordFiles writes the record files of versions just committed. A
// failure is not the commit's: the versions exist; verify notes the
// missing file and verify --repair writes it.
func writeRecordFiles(w *repo.Writer, vs ...*Version) {
	for _, v := range vs {
		data, err := json.Marshal(v)
		if err == nil {
			err = w.PutRecordFile(recordKind, recordFileName(v.ID), data)
		}
		if err != nil {
			log.Printf("mis: warning: version %s is saved, but its record file is not: %v (mis verify --repair writes it)", v.ID, err)
		}
	}
}

// RecordFileCheck compares the version records with their files.
type RecordFileCheck struct {
	// Lost are versions whose file survives but whose record is gone from
	// the metadata database: verify --repair restores them.
	Lost []*Version
	// Missing are records without a file (versions made before record
	// files, or a crash right after a commit); Stale, records whose file
	// differs. verify --repair rewrites both from the records.
	Missing []*Version
	Stale   []*Version
	// Unreadable names files that do not parse.
	Unreadable []string
}

// CheckRecordFiles compares records and record files. It may run while a
// writer saves or removes versions: the files are read first (a file
// exists only once its record was committed), then the records, and a
// file whose record is missing is looked at again (rm removes the file
// before the record), so a version being saved or removed is never taken
// for lost.
func CheckRecordFiles(ctx context.Context, r *repo.Repo) (*RecordFileCheck, error) {
	out := &RecordFileCheck{}
	files := map[string][]byte{}
	err := r.RecordFiles(recordKind, func(name string, data []byte) error {
		if id, ok := strings.CutSuffix(name, ".json"); ok {
			files[id] = data
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var records []*Version
	raw := map[string][]byte{}
	if err := r.View(ctx, func(tx *repo.Tx) error {
		var err error
		if records, err = Versions(tx); err != nil {
			return err
		}
		for _, v := range records {
			if raw[v.ID], err = tx.Get(versionKey(v.ID)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	byID := map[string]*Version{}
	for _, v := range records {
		byID[v.ID] = v
	}
	var lost []string
	for id, data := range files {
		var v Version
		if err := json.Unmarshal(data, &v); err != nil || v.ID != id {
			out.Unreadable = append(out.Unreadable, recordFileName(id))
			continue
		}
		rec, ok := raw[id]
		switch {
		case !ok:
			lost = append(lost, id)
		case !sameJSON(rec, data):
			out.Stale = append(out.Stale, byID[id])
		}
	}
	if len(lost) > 0 {
		again := map[string][]byte{}
		if err := r.RecordFiles(recordKind, func(name string, data []byte) error {
			if id, ok := strings.CutSuffix(name, ".json"); ok {
				again[id] = data
			}
			return nil
		}); err != nil {
			return nil, err
		}
		for _, id := range lost {
			if data, ok := again[id]; ok {
				var v Version
				if json.Unmarshal(data, &v) == nil {
					out.Lost = append(out.Lost, &v)
				}
			}
		}
	}
	for _, v := range records {
		if _, ok := files[v.ID]; !ok {
			out.Missing = append(out.Missing, v)
		}
	}
	sort.Slice(out.Lost, func(i, j int) bool { return out.Lost[i].ID < out.Lost[j].ID })
	sort.Strings(out.Unreadable)
	return out, nil
}

func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return bytes.Equal(ja, jb)
}

// Restored is a version verify --repair brought back from its record file.
type Restored struct {
	Version *Version `json:"version"`
	// Ref is the tag it got back (its creation NAME:TAG); empty when
	// another version holds that tag now.
	Ref string `json:"ref,omitempty"`
}

// RepairRecordFiles restores lost versions from their record files (the
// record, and its creation tag when that tag is free) in one commit, then
// writes the files of records that have none or a stale one.
func RepairRecordFiles(ctx context.Context, w *repo.Writer) (restored []Restored, written int, err error) {
	check, err := CheckRecordFiles(ctx, w.Repo())
	if err != nil {
		return nil, 0, err
	}
	sort.Slice(check.Lost, func(i, j int) bool { return check.Lost[i].Created.Before(check.Lost[j].Created) })
	if len(check.Lost) > 0 {
		err = w.Update(ctx, func(tx *repo.Tx) error {
			restored = restored[:0]
			for _, v := range check.Lost {
				if err := putRecord(tx, v); err != nil {
					return err
				}
				res := Restored{Version: v}
				ref := Ref{v.Name, v.Tag}
				if nameRE.MatchString(ref.Name) && tagRE.MatchString(ref.Tag) {
					if err := checkFree(tx, ref); err == nil {
						if err := tx.Put(tagKey(ref), []byte(v.ID)); err != nil {
							return err
						}
						res.Ref = ref.String()
					}
				}
				restored = append(restored, res)
			}
			return nil
		})
		if err != nil {
			return nil, 0, fmt.Errorf("restore versions from their record files: %w", err)
		}
	}
	for _, v := range append(check.Missing, check.Stale...) {
		data, err := json.Marshal(v)
		if err != nil {
			return restored, written, err
		}
		if err := w.PutRecordFile(recordKind, recordFileName(v.ID), data); err != nil {
			return restored, written, err
		}
		written++
	}
	return restored, written, nil
}
