package catalog

import (
	"context"
	"fmt"

	"mis/chunker"
	"mis/layer"
	"mis/repo"
)

// Verified is what Verify found: the store's report, the problems (each a
// line for the user) and harmless notes.
type Verified struct {
	Report   *repo.VerifyReport
	Problems []string
	Notes    []string
}

// Verify checks every version's references against the index and every
// pack (with readData, every chunk re-hashed), the version chains, and the
// version record files against the metadata.
func (c *Catalog) Verify(ctx context.Context, readData bool, progress func(done, total int64)) (*Verified, error) {
	var manifestProblems []string
	rep, err := c.r.Verify(ctx, repo.VerifyOptions{
		ReadData: readData,
		Refs: func(yield func(owner string, id chunker.ID) error) error {
			var err error
			manifestProblems, err = layer.ForEachRef(ctx, c.r, yield)
			return err
		},
		Progress: progress,
	})
	if err != nil {
		return nil, err
	}
	out := &Verified{Report: rep, Problems: manifestProblems}
	metaDamaged := false
	for _, p := range rep.Problems {
		if p.Harmless {
			out.Notes = append(out.Notes, p.String())
		} else {
			out.Problems = append(out.Problems, p.String())
			metaDamaged = metaDamaged || p.Kind == repo.ProblemMetadata
		}
	}
	if metaDamaged {
		return out, nil
	}
	rf, err := layer.CheckRecordFiles(ctx, c.r)
	if err != nil {
		return nil, err
	}
	for _, v := range rf.Lost {
		out.Problems = append(out.Problems, fmt.Sprintf("version %s (%s:%s) has a record file but no record: the metadata database lost it; mis verify --repair restores it", v.ID, v.Name, v.Tag))
	}
	for _, n := range rf.Unreadable {
		out.Problems = append(out.Problems, fmt.Sprintf("record file versions/%s does not parse", n))
	}
	if len(rf.Missing) > 0 {
		out.Notes = append(out.Notes, fmt.Sprintf("%d version(s) have no record file (made before record files existed, or a crash right after a commit); mis verify --repair writes them", len(rf.Missing)))
	}
	if len(rf.Stale) > 0 {
		out.Notes = append(out.Notes, fmt.Sprintf("%d version record file(s) differ from their records; mis verify --repair rewrites them", len(rf.Stale)))
	}
	return out, nil
}
