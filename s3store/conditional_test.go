package s3store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/signer"

	"mis/s3store/s3test"
)

// recordingTransport keeps the request line, the conditional headers and
// the answer of every request, to show exactly what went over the wire.
type recordingTransport struct {
	mu  sync.Mutex
	log []string
}

func (rt *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	line := fmt.Sprintf("%s %s", r.Method, r.URL.RequestURI())
	for _, h := range []string{"If-None-Match", "If-Match"} {
		if v := r.Header.Get(h); v != "" {
			line += fmt.Sprintf(" [%s: %s]", h, v)
		}
	}
	if err != nil {
		line += " -> " + err.Error()
	} else {
		line += " -> " + resp.Status
		if resp.StatusCode >= 300 {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			resp.Body = io.NopCloser(bytes.NewReader(body))
			line += " " + strings.TrimSpace(string(body))
		} else if et := resp.Header.Get("ETag"); et != "" {
			line += " ETag: " + et
		}
	}
	rt.mu.Lock()
	rt.log = append(rt.log, line)
	rt.mu.Unlock()
	return resp, err
}

func (rt *recordingTransport) take() []string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	l := rt.log
	rt.log = nil
	return l
}

// TestConditionalWrites probes what the next step (tags and metadata as
// objects) needs from the server: does PutObject with If-None-Match: *
// refuse a key that exists (412), and does exactly one of several racing
// creators win? If-Match (compare-and-swap on the ETag), a conditional
// CompleteMultipartUpload and a conditional DELETE are probed and logged
// (run with -v to see the requests and answers).
func TestConditionalWrites(t *testing.T) {
	srv := s3test.Start(t)
	rt := &recordingTransport{}
	cfg := testConfig(srv, "")
	s, err := New(cfg, Options{Transport: rt, Retry: RetryPolicy{MaxAttempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.EnsureBucket(ctx); err != nil {
		t.Fatal(err)
	}
	rt.take()
	put := func(key, body string, opts minio.PutObjectOptions) (minio.UploadInfo, error) {
		return s.core.PutObject(ctx, s.bucket, key, strings.NewReader(body), int64(len(body)), "", "", opts)
	}
	ifNoneMatch := func() minio.PutObjectOptions {
		var o minio.PutObjectOptions
		o.SetMatchETagExcept("*")
		return o
	}
	ifMatch := func(etag string) minio.PutObjectOptions {
		var o minio.PutObjectOptions
		o.SetMatchETag(etag)
		return o
	}
	status := func(err error) string {
		if err == nil {
			return "ok"
		}
		st, code := s3Status(err)
		return fmt.Sprintf("%d %s", st, code)
	}
	get := func(key string) string {
		body, _, _, err := s.core.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer body.Close()
		data, _ := io.ReadAll(body)
		return string(data)
	}

	// 1. create-if-absent on an absent key, then on the same key again.
	first, err := put("tags/a", "v1", ifNoneMatch())
	if err != nil {
		t.Fatalf("If-None-Match: * on an absent key: %v", err)
	}
	_, err = put("tags/a", "v2", ifNoneMatch())
	if status(err) != "412 PreconditionFailed" {
		t.Fatalf("If-None-Match: * on an existing key: %s (%v); want 412 PreconditionFailed", status(err), err)
	}
	if got := get("tags/a"); got != "v1" {
		t.Fatalf("the refused put changed the object to %q", got)
	}
	t.Logf("create-if-absent:\n  %s", strings.Join(rt.take(), "\n  "))

	// 2. Racing creators: exactly one wins, and its body is what is stored.
	for round := range 20 {
		key := fmt.Sprintf("tags/race-%d", round)
		var wins atomic.Int32
		var winner atomic.Value
		var wg sync.WaitGroup
		other := make(chan string, 16)
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				body := fmt.Sprintf("writer %d", i)
				_, err := put(key, body, ifNoneMatch())
				switch st := status(err); st {
				case "ok":
					wins.Add(1)
					winner.Store(body)
				case "412 PreconditionFailed":
				default:
					other <- st + ": " + err.Error()
				}
			}()
		}
		wg.Wait()
		close(other)
		for o := range other {
			t.Errorf("round %d: a racing create got %s", round, o)
		}
		if wins.Load() != 1 {
			t.Fatalf("round %d: %d of 16 racing If-None-Match: * puts succeeded; want exactly 1", round, wins.Load())
		}
		if got := get(key); got != winner.Load().(string) {
			t.Fatalf("round %d: stored %q, the winner wrote %q", round, got, winner.Load())
		}
	}
	rt.take()
	t.Log("racing creators: exactly 1 of 16 won in each of 20 rounds, and its body is stored")

	// 3. If-Match: compare-and-swap on the ETag (probed and asserted:
	// the next step may use it to move a tag).
	_, err = put("tags/a", "v3", ifMatch("00000000000000000000000000000000"))
	wrongMatch := status(err)
	_, err = put("tags/a", "v3", ifMatch(first.ETag))
	rightMatch := status(err)
	t.Logf("If-Match: wrong ETag -> %s, right ETag -> %s:\n  %s", wrongMatch, rightMatch, strings.Join(rt.take(), "\n  "))
	if wrongMatch != "412 PreconditionFailed" || rightMatch != "ok" || get("tags/a") != "v3" {
		t.Errorf("If-Match on PutObject is not honoured (wrong: %s, right: %s)", wrongMatch, rightMatch)
	}

	// 4. Probes only (logged): a conditional multipart completion and a
	// conditional DELETE.
	id, err := s.core.NewMultipartUpload(ctx, s.bucket, "tags/a", minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	part, err := s.core.PutObjectPart(ctx, s.bucket, "tags/a", id, 1, strings.NewReader("v4"), 2, minio.PutObjectPartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.core.CompleteMultipartUpload(ctx, s.bucket, "tags/a", id,
		[]minio.CompletePart{{PartNumber: 1, ETag: part.ETag}}, ifNoneMatch())
	mpu := status(err)
	s.core.AbortMultipartUpload(ctx, s.bucket, "tags/a", id)
	t.Logf("CompleteMultipartUpload with If-None-Match: * on an existing key -> %s (object now %q)", mpu, get("tags/a"))

	t.Logf("log:\n  %s", strings.Join(rt.take(), "\n  "))

	// DELETE with If-Match (minio-go has no option for it: a request
	// signed by hand).
	del := func(etag string) string {
		req, err := http.NewRequest(http.MethodDelete, "http://"+srv.Endpoint+"/"+s.bucket+"/tags/a", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("If-Match", `"`+etag+`"`)
		req.Header.Set("X-Amz-Content-Sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
		req = signer.SignV4(*req, s3test.AccessKey, s3test.SecretKey, "", "us-east-1")
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Status
	}
	cur, err := s.core.StatObject(ctx, s.bucket, "tags/a", minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wrongDel, rightDel := del("00000000000000000000000000000000"), del(cur.ETag)
	t.Logf("DELETE with If-Match: wrong ETag -> %s, right ETag -> %s:\n  %s", wrongDel, rightDel, strings.Join(rt.take(), "\n  "))

	// 5. Racing compare-and-swaps from the same ETag: exactly one wins.
	for round := range 10 {
		key := fmt.Sprintf("tags/cas-%d", round)
		base, err := put(key, "base", minio.PutObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := put(key, fmt.Sprintf("writer %d", i), ifMatch(base.ETag)); err == nil {
					wins.Add(1)
				} else if st := status(err); st != "412 PreconditionFailed" {
					t.Errorf("round %d: a racing If-Match put got %s: %v", round, st, err)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Errorf("round %d: %d of 8 racing If-Match puts from the same ETag succeeded; want exactly 1", round, wins.Load())
		}
	}
	rt.take()
	t.Log("racing If-Match puts: checked 10 rounds of 8")
}
