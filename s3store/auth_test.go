package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mis/s3store/s3test"
)

// countingTransport counts the requests that go out.
type countingTransport struct {
	n atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

// expectDenied checks that err is a clear, not-retried refusal: it
// mentions want, does not wrap fs.ErrNotExist, and took one request.
func expectDenied(t *testing.T, what string, err error, ct *countingTransport, want ...string) {
	t.Helper()
	n := ct.n.Swap(0)
	if err == nil {
		t.Fatalf("%s: no error", what)
	}
	if errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s: %v wraps fs.ErrNotExist", what, err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("%s: %v; want it to say %q", what, err, w)
		}
	}
	if n != 1 {
		t.Fatalf("%s: %d requests; a 4xx must not be retried", what, n)
	}
	t.Logf("%s: %v", what, err)
}

// TestWrongCredentials: a wrong secret or an unknown access key gives an
// error naming the variable to fix, after one request (no retries), and
// never a not-exist.
func TestWrongCredentials(t *testing.T) {
	srv := s3test.Start(t)
	good := newStore(t, srv, "", Options{})
	ctx := context.Background()
	p := testPack(20, 1000)
	if err := good.Put(ctx, p.name, bytes.NewReader(p.data), 1000); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, access, secret string
		want                 []string
	}{
		{"wrong secret", s3test.AccessKey, "not-the-secret", []string{"403", "AWS_SECRET_ACCESS_KEY"}},
		{"unknown access key", "nobody", "whatever", []string{"403", "AWS_ACCESS_KEY_ID"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ct := &countingTransport{}
			cfg := good.Config()
			cfg.AccessKeyID, cfg.SecretAccessKey = tc.access, tc.secret
			s, err := New(cfg, Options{Transport: ct, Retry: RetryPolicy{BaseDelay: time.Second}})
			if err != nil {
				t.Fatal(err)
			}
			expectDenied(t, "check", s.Check(ctx), ct, tc.want...)
			err = s.List(ctx, func(string, int64) error { return nil })
			expectDenied(t, "list", err, ct, tc.want...)
			err = s.Put(ctx, p.name, bytes.NewReader(p.data), 1000)
			expectDenied(t, "put", err, ct, tc.want...)
			_, err = s.Open(ctx, p.name)
			expectDenied(t, "open (HEAD, no error body)", err, ct, "403")
			_, err = s.Stat(ctx, testPack(21, 10).name)
			expectDenied(t, "stat of a missing pack", err, ct, "403")
			err = s.Remove(ctx, p.name)
			expectDenied(t, "remove", err, ct, "403")
			pr, err := good.Open(ctx, p.name)
			if err != nil {
				t.Fatal(err)
			}
			_, err = (&reader{s: s, key: pr.(*reader).key, size: pr.Size()}).ReadAt(ctx, make([]byte, 10), 0)
			expectDenied(t, "ranged GET", err, ct, tc.want...)
		})
	}
}

// TestReadOnlyUser: a user whom a bucket policy allows only to read and
// list gets a clear, not-retried 403 for Put and Remove, while its reads
// work; a user with no grant at all gets 403 (not not-exist) for a pack
// that exists.
func TestReadOnlyUser(t *testing.T) {
	srv := s3test.Start(t)
	owner := newStore(t, srv, "", Options{})
	ctx := context.Background()
	p := testPack(22, 5000)
	if err := owner.Put(ctx, p.name, bytes.NewReader(p.data), 5000); err != nil {
		t.Fatal(err)
	}
	srv.CreateUser("reader", "reader-secret")
	srv.CreateUser("stranger", "stranger-secret")
	policy := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["reader"]},`+
		`"Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::%[1]s","arn:aws:s3:::%[1]s/*"]}]}`, owner.bucket)
	if err := owner.core.PutBucketPolicy(ctx, owner.bucket, policy); err != nil {
		t.Fatalf("put bucket policy: %v", err)
	}

	user := func(access, secret string) (*Store, *countingTransport) {
		ct := &countingTransport{}
		cfg := owner.Config()
		cfg.AccessKeyID, cfg.SecretAccessKey = access, secret
		s, err := New(cfg, Options{Transport: ct})
		if err != nil {
			t.Fatal(err)
		}
		return s, ct
	}

	r, ct := user("reader", "reader-secret")
	if err := r.Check(ctx); err != nil {
		t.Fatalf("reader check: %v", err)
	}
	if data, err := readAll(ctx, r, p.name); err != nil || !bytes.Equal(data, p.data) {
		t.Fatalf("reader read: %v", err)
	}
	if got := listNames(t, r); len(got) != 1 {
		t.Fatalf("reader lists %v", got)
	}
	if _, err := r.Stat(ctx, testPack(23, 10).name); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("reader stat of a missing pack: %v, want not-exist (it may list)", err)
	}
	ct.n.Store(0)
	q := testPack(24, 3000)
	expectDenied(t, "reader put", r.Put(ctx, q.name, bytes.NewReader(q.data), 3000), ct, "403 AccessDenied")
	expectDenied(t, "reader remove", r.Remove(ctx, p.name), ct, "403 AccessDenied")
	if _, err := owner.Stat(ctx, q.name); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the refused put stored something: %v", err)
	}
	if _, err := owner.Stat(ctx, p.name); err != nil {
		t.Fatalf("the refused remove removed: %v", err)
	}

	st, ct := user("stranger", "stranger-secret")
	_, err := st.Stat(ctx, p.name)
	expectDenied(t, "stranger stat of an existing pack", err, ct, "403")
	_, err = st.Stat(ctx, q.name)
	expectDenied(t, "stranger stat of a missing pack", err, ct, "403")
	expectDenied(t, "stranger check", st.Check(ctx), ct, "403 AccessDenied")
}
