package s3store

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"mis/chunker"
	"mis/repo"
	"mis/s3store/s3test"
)

// TestRepoOnS3: a repository whose packs live in the S3 store writes,
// commits, reads back, verifies with --read-data, and recovers after a
// writer that died with an upload in flight (the next writer's
// RemoveIncomplete aborts it).
func TestRepoOnS3(t *testing.T) {
	srv := s3test.Start(t)
	s := newStore(t, srv, "repos/one/", Options{MultipartThreshold: 5 * mib, PartSize: 5 * mib})
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "repo")
	if err := repo.Init(dir, repo.InitOptions{PackStore: s, PackTargetSize: 8 * mib}); err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(dir, repo.WithPackStore(s))
	if err != nil {
		t.Fatal(err)
	}
	// 30 MiB: random parts (stored raw) and repeated text (compressed),
	// so packs above and below the multipart threshold.
	var data bytes.Buffer
	for i := range 6 {
		data.Write(testPack(uint64(60+i), 3*mib).data)
		data.Write(bytes.Repeat([]byte("mis on s3, chunk by chunk. "), 2*mib/27))
	}
	w, err := r.OpenWriter(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	refs, err := w.WriteStream(bytes.NewReader(data.Bytes()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx, nil); err != nil {
		t.Fatal(err)
	}
	// A writer that dies in the middle of a multipart Put leaves an upload.
	if _, err := s.core.NewMultipartUpload(ctx, s.bucket, s.key(testPack(70, 1).name), minioPutOpts()); err != nil {
		t.Fatal(err)
	}
	w.Close()

	ids := make([]chunker.ID, len(refs))
	for i, ref := range refs {
		ids[i] = ref.ID
	}
	var back bytes.Buffer
	if err := r.ReadChunks(ctx, ids, func(b []byte) error { back.Write(b); return nil }); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.Bytes(), data.Bytes()) {
		t.Fatal("the stream reads back wrong")
	}
	rep, err := r.Verify(ctx, repo.VerifyOptions{ReadData: true})
	if err != nil || !rep.OK() {
		t.Fatalf("verify --read-data: %v, %+v", err, rep)
	}
	st, err := r.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d packs, %d chunks, %d bytes read by verify; stats %+v", rep.Packs, rep.Chunks, rep.BytesRead, st)
	if rep.Packs < 3 {
		t.Fatalf("only %d packs: the test does not cover several packs", rep.Packs)
	}
	if len(uploads(t, s)) != 1 {
		t.Fatal("the abandoned upload is not there")
	}
	w, err = r.OpenWriter(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if u := uploads(t, s); len(u) != 0 {
		t.Fatalf("the next writer left the abandoned upload: %v", u)
	}
}
