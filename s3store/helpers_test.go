package s3store

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/zeebo/blake3"

	"github.com/minio/minio-go/v7"

	"mis/s3store/s3test"
)

var bucketSeq atomic.Int64

// testConfig is a config for srv with a new bucket name and prefix.
func testConfig(srv *s3test.Server, prefix string) Config {
	return Config{
		Endpoint:        srv.Endpoint,
		Bucket:          fmt.Sprintf("mis-test-%d", bucketSeq.Add(1)),
		Prefix:          prefix,
		Region:          "us-east-1",
		AccessKeyID:     s3test.AccessKey,
		SecretAccessKey: s3test.SecretKey,
	}
}

// newStore returns a store in a new bucket of srv.
func newStore(t testing.TB, srv *s3test.Server, prefix string, opts Options) *Store {
	t.Helper()
	s, err := New(testConfig(srv, prefix), opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func minioPutOpts() minio.PutObjectOptions { return minio.PutObjectOptions{} }

type pack struct {
	name string
	data []byte
}

// testPack returns size random bytes (from seed) and their content name.
func testPack(seed uint64, size int) pack {
	rng := rand.New(rand.NewPCG(seed, 0x53))
	data := make([]byte, size)
	for i := 0; i+8 <= size; i += 8 {
		binary.LittleEndian.PutUint64(data[i:], rng.Uint64())
	}
	for i := size &^ 7; i < size; i++ {
		data[i] = byte(rng.Uint32())
	}
	sum := blake3.Sum256(data)
	return pack{name: hex.EncodeToString(sum[:]), data: data}
}

// readAll reads a whole pack through Open and ReadAt.
func readAll(ctx context.Context, s *Store, name string) ([]byte, error) {
	pr, err := s.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	defer pr.Close()
	buf := make([]byte, pr.Size())
	n, err := pr.ReadAt(ctx, buf, 0)
	if n != len(buf) {
		return nil, fmt.Errorf("read %s: %d of %d bytes: %w", name, n, len(buf), err)
	}
	return buf, nil
}

// listNames lists s.
func listNames(t testing.TB, s *Store) map[string]int64 {
	t.Helper()
	got := map[string]int64{}
	if err := s.List(context.Background(), func(name string, size int64) error {
		got[name] = size
		return nil
	}); err != nil {
		t.Fatalf("list: %v", err)
	}
	return got
}

// uploads returns the incomplete multipart uploads under s's packs.
func uploads(t testing.TB, s *Store) []string {
	t.Helper()
	res, err := s.core.ListMultipartUploads(context.Background(), s.bucket, s.packs, "", "", "", 1000)
	if err != nil {
		t.Fatalf("list uploads: %v", err)
	}
	var keys []string
	for _, u := range res.Uploads {
		keys = append(keys, u.Key+" "+u.UploadID)
	}
	return keys
}
