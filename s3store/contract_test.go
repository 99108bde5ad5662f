package s3store

import (
	"context"
	"testing"

	"mis/repo"
	"mis/repo/packstoretest"
	"mis/s3store/s3test"
)

// TestContract runs the PackStore contract against a real gateway. Its
// packs (up to 1 MiB) go in single PUTs; the multipart path, which needs
// 5 MiB parts, has its own tests (multipart_test.go).
func TestContract(t *testing.T) {
	srv := s3test.Start(t)
	packstoretest.Run(t, packstoretest.Harness{
		New: func(t *testing.T) repo.PackStore { return newStore(t, srv, "repo/x/", Options{}) },
		// What a writer killed during a multipart Put leaves: an upload
		// that was started and never completed.
		Leftover: func(t *testing.T, ps repo.PackStore) {
			s := ps.(*Store)
			name := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
			if _, err := s.core.NewMultipartUpload(context.Background(), s.bucket, s.key(name), minioPutOpts()); err != nil {
				t.Fatal(err)
			}
		},
	})
}
