package s3store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mis/s3store/s3test"
)

// pausingTransport holds PUT request bodies still once, after a given
// number of body bytes in total, until released: the test kills the
// gateway in that moment.
type pausingTransport struct {
	after   int64
	sent    atomic.Int64
	paused  chan struct{}
	release chan struct{}
	once    sync.Once
}

func newPausingTransport(after int64) *pausingTransport {
	return &pausingTransport{after: after, paused: make(chan struct{}), release: make(chan struct{})}
}

func (p *pausingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPut && r.Body != nil && r.Body != http.NoBody {
		r.Body = &pausingBody{ReadCloser: r.Body, t: p}
	}
	return http.DefaultTransport.RoundTrip(r)
}

type pausingBody struct {
	io.ReadCloser
	t *pausingTransport
}

func (b *pausingBody) Read(buf []byte) (int, error) {
	n, err := b.ReadCloser.Read(buf[:min(len(buf), 32<<10)])
	if b.t.sent.Add(int64(n)) >= b.t.after {
		b.t.once.Do(func() {
			close(b.t.paused)
			<-b.t.release
		})
	}
	return n, err
}

// bucketFiles lists the regular files under the gateway's directory of
// the bucket (what versitygw keeps on disk, temporary files included).
func bucketFiles(t *testing.T, srv *s3test.Server, bucket string) []string {
	var files []string
	filepath.WalkDir(filepath.Join(srv.Dir, bucket), func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(srv.Dir, path)
			files = append(files, rel)
		}
		return nil
	})
	return files
}

// TestGatewayKilledDuringPut kills the gateway (SIGKILL) while a pack's
// bytes are on the wire, for a single PUT and in the third part of a
// multipart upload: Put fails, nothing is visible under the name after
// the gateway restarts, RemoveIncomplete removes the multipart leftover
// (and then finds nothing more), and the name can be put afterwards.
func TestGatewayKilledDuringPut(t *testing.T) {
	for _, tc := range []struct {
		name      string
		size      int
		pauseAt   int64
		leftovers bool
	}{
		{"single", 8 * mib, 4 * mib, false},
		{"multipart", 16 * mib, 11 * mib, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := s3test.Start(t)
			ctx := context.Background()
			pt := newPausingTransport(tc.pauseAt)
			cfg := testConfig(srv, "crash/")
			s, err := New(cfg, Options{
				MultipartThreshold: 6 * mib, PartSize: 5 * mib, Parallel: 1, Transport: pt,
				Retry: RetryPolicy{MaxAttempts: 3, BaseDelay: 10 * time.Millisecond, MaxDelay: 20 * time.Millisecond},
			})
			if err != nil {
				t.Fatal(err)
			}
			if tc.size <= 6*mib {
				t.Fatal("the single case must stay below the threshold")
			}
			if tc.name == "single" {
				s.opts.MultipartThreshold = 64 * mib
			}
			if err := s.EnsureBucket(ctx); err != nil {
				t.Fatal(err)
			}
			p := testPack(30, tc.size)
			errc := make(chan error, 1)
			go func() { errc <- s.Put(ctx, p.name, bytes.NewReader(p.data), int64(len(p.data))) }()
			select {
			case <-pt.paused:
			case err := <-errc:
				t.Fatalf("put ended before the pause: %v", err)
			}
			srv.Kill()
			close(pt.release)
			err = <-errc
			if err == nil {
				t.Fatal("put succeeded although the gateway was killed during it")
			}
			t.Logf("put: %v", err)
			srv.Restart()

			if _, err := s.Stat(ctx, p.name); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("stat after the crash: %v, want not-exist", err)
			}
			if got := listNames(t, s); len(got) != 0 {
				t.Fatalf("listed after the crash: %v", got)
			}
			t.Logf("gateway files after the crash: %v; uploads: %v", bucketFiles(t, srv, s.bucket), uploads(t, s))
			n, err := s.RemoveIncomplete(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if tc.leftovers && n == 0 {
				t.Fatal("RemoveIncomplete found no leftover of the killed multipart upload")
			}
			if u := uploads(t, s); len(u) != 0 {
				t.Fatalf("uploads after RemoveIncomplete: %v", u)
			}
			if n, err := s.RemoveIncomplete(ctx); err != nil || n != 0 {
				t.Fatalf("second RemoveIncomplete: %d, %v", n, err)
			}
			// A multipart leftover is the client's to clean, and the abort
			// did: the parts are gone from the gateway's disk. A single PUT
			// cut by the crash leaves versitygw 1.8.0 a temporary file in
			// BUCKET/.sgwtmp/ that no S3 request can see or delete (S3
			// itself discards such uploads): the gateway's garbage, not a
			// leftover of ours.
			for _, f := range bucketFiles(t, srv, s.bucket) {
				if tc.leftovers || !strings.HasPrefix(f, s.bucket+"/.sgwtmp/") || strings.Contains(f, "/multipart/") {
					t.Errorf("file left in the gateway's bucket directory: %s", f)
				}
			}
			t.Logf("RemoveIncomplete removed %d", n)

			if err := s.Put(ctx, p.name, bytes.NewReader(p.data), int64(len(p.data))); err != nil {
				t.Fatal(err)
			}
			if got, err := readAll(ctx, s, p.name); err != nil || !bytes.Equal(got, p.data) {
				t.Fatalf("read back after a new put: %v", err)
			}
		})
	}
}
