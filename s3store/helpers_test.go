package s3store

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

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
