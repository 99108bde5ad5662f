// Package testrepo is test equipment: a new repository in a temporary
// directory, and images imported into it as versions, for the tests of
// every package above repo.
package testrepo

import (
	"context"
	"path/filepath"
	"testing"

	"mis/fixtures"
	"mis/image"
	"mis/layer"
	"mis/manifest"
	"mis/repo"
)

// New creates and opens an empty repository that lives until the test ends.
func New(tb testing.TB) *repo.Repo {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "repo")
	if err := repo.Init(dir, repo.InitOptions{}); err != nil {
		tb.Fatal(err)
	}
	r, err := repo.Open(dir)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// Import stores the raw image at path as version ref (NAME:TAG) with opt
// (no parent unless opt names one) and returns the version and manifest.
func Import(tb testing.TB, r *repo.Repo, path, ref string, opt image.ImportOptions) (*layer.Version, *manifest.Manifest) {
	tb.Helper()
	lr, err := layer.ParseRef(ref)
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	w, err := r.OpenWriter(ctx, "test import")
	if err != nil {
		tb.Fatal(err)
	}
	defer w.Close()
	m, err := image.Import(ctx, w, r.Config().Chunker, path, opt)
	if err != nil {
		tb.Fatalf("import %s: %v", path, err)
	}
	v := &layer.Version{Source: path}
	if err := layer.Save(ctx, w, lr, v, m); err != nil {
		tb.Fatal(err)
	}
	return v, m
}

// Fixture imports the fixture image of kind (built with real tools, see
// package fixtures) into a new repository as img:v1.
func Fixture(tb testing.TB, kind string) (src string, r *repo.Repo, v *layer.Version) {
	tb.Helper()
	src = fixtures.Path(tb, kind)
	r = New(tb)
	v, _ = Import(tb, r, src, "img:v1", image.ImportOptions{})
	return src, r, v
}
