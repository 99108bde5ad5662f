package s3store

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A server misbehaving in ways versitygw does not: these answers must be
// errors, never wrong data.
func fakeStore(t *testing.T, h http.HandlerFunc) *Store {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	s, err := New(Config{Endpoint: strings.TrimPrefix(srv.URL, "http://"), Bucket: "bucket", AccessKeyID: "a", SecretAccessKey: "b"},
		Options{Retry: RetryPolicy{MaxAttempts: 2, BaseDelay: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRangeIgnored: a server that answers a ranged GET with the whole
// object (200, no Content-Range) or another range must not have those
// bytes taken for the ones asked.
func TestRangeIgnored(t *testing.T) {
	body := strings.Repeat("0123456789", 10)
	for _, tc := range []struct{ name, contentRange string }{
		{"whole object", ""},
		{"other range", "bytes 0-4/100"},
		{"other size", "bytes 10-14/200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := fakeStore(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "100")
				w.Header().Set("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT")
				w.Header().Set("ETag", `"x"`)
				if r.Method == http.MethodHead {
					return
				}
				if tc.contentRange != "" {
					w.Header().Set("Content-Range", tc.contentRange)
					w.Header().Set("Content-Length", "5")
					w.WriteHeader(http.StatusPartialContent)
					fmt.Fprint(w, body[:5])
					return
				}
				fmt.Fprint(w, body)
			})
			pr, err := s.Open(context.Background(), testPack(50, 1).name)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 5)
			n, err := pr.ReadAt(context.Background(), buf, 10)
			if err == nil || n != 0 {
				t.Fatalf("read 10+5 answered with %q: %d bytes %q, %v; want an error", tc.contentRange, n, buf[:n], err)
			}
			t.Log(err)
		})
	}
}

// TestListOrder: a listing out of key order is an error, not a silently
// unordered List.
func TestListOrder(t *testing.T) {
	a, b := testPack(51, 1).name, testPack(52, 1).name
	if a > b {
		a, b = b, a
	}
	s := fakeStore(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>bucket</Name><Prefix>packs/</Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>`+
			`<Contents><Key>packs/%s/%s.pack</Key><Size>1</Size></Contents><Contents><Key>packs/%s/%s.pack</Key><Size>1</Size></Contents></ListBucketResult>`,
			b[:2], b, a[:2], a)
	})
	var got []string
	err := s.List(context.Background(), func(name string, _ int64) error { got = append(got, name); return nil })
	if err == nil || !strings.Contains(err.Error(), "not in key order") {
		t.Fatalf("out-of-order listing: %v (got %v)", err, got)
	}
}
