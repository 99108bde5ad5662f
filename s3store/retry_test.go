package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"mis/s3store/s3test"
)

func TestRetryable(t *testing.T) {
	resp := func(status int, code string) error { return minio.ErrorResponse{StatusCode: status, Code: code} }
	yes := []error{
		resp(500, "InternalError"), resp(502, "502 Bad Gateway"), resp(503, "SlowDown"), resp(503, "ServiceUnavailable"),
		resp(504, "504 Gateway Timeout"), resp(429, "TooManyRequests"), resp(408, "RequestTimeout"),
		resp(400, "RequestTimeout"), // S3's "socket not read from in time" is a 400
		fmt.Errorf("giving context: %w", resp(503, "SlowDown")),
		&url.Error{Op: "Put", URL: "http://x", Err: errors.New("Connection closed by foreign host")},
		&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED},
		syscall.ECONNRESET, io.ErrUnexpectedEOF, context.DeadlineExceeded,
		transient{errors.New("body broke off")},
	}
	no := []error{
		resp(400, "BadDigest"), resp(400, "InvalidArgument"), resp(403, "AccessDenied"), resp(403, "SignatureDoesNotMatch"),
		resp(403, "InvalidAccessKeyId"), resp(404, "NoSuchKey"), resp(404, "NoSuchBucket"), resp(404, "NoSuchUpload"),
		resp(409, "BucketAlreadyExists"), resp(412, "PreconditionFailed"), resp(416, "InvalidRange"),
		resp(0, "InvalidArgument"), // minio-go's own check, never sent
		context.Canceled, errors.New("some local failure"),
	}
	for _, err := range yes {
		if !retryable(err) {
			t.Errorf("%#v is not retried", err)
		}
	}
	for _, err := range no {
		if retryable(err) {
			t.Errorf("%#v is retried", err)
		}
	}
}

func TestBackoff(t *testing.T) {
	p := RetryPolicy{BaseDelay: 100 * time.Millisecond, MaxDelay: 2 * time.Second}.withDefaults()
	for attempt, ceiling := range []time.Duration{100, 200, 400, 800, 1600, 2000, 2000} {
		ceiling *= time.Millisecond
		if attempt == 6 {
			attempt = 62 // no overflow
		}
		seen := map[time.Duration]bool{}
		for range 200 {
			d := p.backoff(attempt)
			if d < ceiling/2 || d > ceiling {
				t.Fatalf("attempt %d: wait %v outside [%v, %v]", attempt, d, ceiling/2, ceiling)
			}
			seen[d] = true
		}
		if len(seen) < 50 {
			t.Fatalf("attempt %d: only %d distinct waits in 200: no jitter", attempt, len(seen))
		}
	}
	if got := p.timeout(1 << 20); got != 30*time.Second+4*time.Second {
		t.Fatalf("timeout for 1 MiB: %v", got)
	}
}

// TestNotExistNeedsTheBucket: a 404 for a missing bucket is not a
// missing pack (gc and readers would take every pack for removed).
func TestNotExistNeedsTheBucket(t *testing.T) {
	srv := s3test.Start(t)
	cfg := testConfig(srv, "")
	s, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	name := testPack(40, 10).name
	_, err = s.Stat(ctx, name)
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat in a missing bucket: %v; want an error that is not not-exist", err)
	}
	t.Log(err)
	if _, err := s.Open(ctx, name); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("open in a missing bucket: %v", err)
	}
	if err := s.List(ctx, func(string, int64) error { return nil }); err == nil {
		t.Fatal("list of a missing bucket: no error")
	}
	if err := s.Check(ctx); err == nil {
		t.Fatal("check of a missing bucket: no error")
	}
	if err := s.Remove(ctx, name); err == nil {
		t.Fatal("remove in a missing bucket: no error")
	}
	// A reader whose bucket vanishes.
	if err := s.EnsureBucket(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureBucket(ctx); err != nil {
		t.Fatalf("EnsureBucket of an existing bucket: %v", err)
	}
	if err := s.Check(ctx); err != nil {
		t.Fatal(err)
	}
	p := testPack(41, 1000)
	if err := s.Put(ctx, p.name, bytes.NewReader(p.data), 1000); err != nil {
		t.Fatal(err)
	}
	pr, err := s.Open(ctx, p.name)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, p.name); err != nil {
		t.Fatal(err)
	}
	if err := s.core.RemoveBucket(ctx, s.bucket); err != nil {
		t.Fatal(err)
	}
	if _, err := pr.ReadAt(ctx, make([]byte, 10), 0); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("read after the bucket went: %v; want an error that is not not-exist", err)
	}
}

// TestTimeoutRetried: a server that does not answer makes each try time
// out; the call fails after MaxAttempts tries, and a cancelled context
// ends the waiting at once.
func TestTimeoutRetried(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // accept, read nothing, answer nothing
		}
	}()
	s, err := New(Config{Endpoint: ln.Addr().String(), Bucket: "bucket", AccessKeyID: "a", SecretAccessKey: "b"},
		Options{Retry: RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond, AttemptTimeout: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = s.Stat(context.Background(), testPack(42, 1).name)
	if err == nil || errors.Is(err, fs.ErrNotExist) || !errors.Is(err, errAttemptTimeout) {
		t.Fatalf("stat against a silent server: %v", err)
	}
	if st := s.Stats(); st.Retries != 2 || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("%d retries in %v; want 2 retries of 100 ms tries", st.Retries, time.Since(start))
	}
	t.Log(err)

	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	s.retry.MaxAttempts, s.retry.AttemptTimeout = 100, time.Hour
	start = time.Now()
	_, err = s.Stat(ctx, testPack(42, 1).name)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("stat with a 150 ms context: %v after %v", err, time.Since(start))
	}
}
