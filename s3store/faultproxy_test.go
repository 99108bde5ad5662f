package s3store

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// faultProxy sits between a store and the gateway and misbehaves on a
// fraction of the requests, as a real network and a loaded S3 do.
type faultProxy struct {
	target string // the gateway's host:port
	srv    *httptest.Server
	client *http.Client

	mu     sync.Mutex
	rng    *rand.Rand
	rates  faultRates
	counts map[string]int
}

type faultRates struct {
	// Latency: every request waits a uniform [0, Latency) first.
	Latency time.Duration
	// CutRequest is the fraction of requests with a body (PUTs) whose
	// body is cut off halfway on the way to the gateway.
	CutRequest float64
	// Fractions of the other requests that get: a 500 InternalError, a
	// 503 SlowDown, a forwarded request whose response is cut off (a body
	// after half its bytes, an empty body before its headers: the server
	// did the work but the answer is lost), and a stall (no answer until
	// the client gives up).
	Err500, Err503, CutResponse, Stall float64
	// Only, if set, is the one HTTP method that gets faults.
	Only string
}

func newFaultProxy(t testing.TB, target string, rates faultRates, seed uint64) *faultProxy {
	f := &faultProxy{
		target: target,
		rng:    rand.New(rand.NewPCG(seed, 0xfa)),
		rates:  rates,
		counts: map[string]int{},
		client: &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 32}},
	}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

// Endpoint is the proxy's host:port.
func (f *faultProxy) Endpoint() string { return strings.TrimPrefix(f.srv.URL, "http://") }

func (f *faultProxy) setRates(r faultRates) {
	f.mu.Lock()
	f.rates = r
	f.mu.Unlock()
}

// Counts returns how many requests got each fault ("ok": none).
func (f *faultProxy) Counts() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := map[string]int{}
	for k, v := range f.counts {
		c[k] = v
	}
	return c
}

func (f *faultProxy) pick(method string, hasBody bool) (string, time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.rates
	if r.Only != "" && r.Only != method {
		r = faultRates{}
	}
	var delay time.Duration
	if r.Latency > 0 {
		delay = time.Duration(f.rng.Int64N(int64(r.Latency)))
	}
	fault := "ok"
	if hasBody && f.rng.Float64() < r.CutRequest {
		fault = "cut-request"
	} else {
		x := f.rng.Float64()
		for _, c := range []struct {
			name string
			p    float64
		}{{"500", r.Err500}, {"503", r.Err503}, {"cut-response", r.CutResponse}, {"stall", r.Stall}} {
			if x < c.p {
				fault = c.name
				break
			}
			x -= c.p
		}
	}
	f.counts[fault]++
	return fault, delay
}

func (f *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fault, delay := f.pick(r.Method, r.ContentLength > 0)
	time.Sleep(delay)
	switch fault {
	case "500", "503":
		code, status := "InternalError", http.StatusInternalServerError
		if fault == "503" {
			code, status = "SlowDown", http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected by the test proxy</Message></Error>`, code)
		return
	case "stall":
		select {
		case <-r.Context().Done():
		case <-time.After(time.Minute):
		}
		panic(http.ErrAbortHandler)
	}

	body := io.Reader(r.Body)
	if fault == "cut-request" {
		body = io.LimitReader(r.Body, r.ContentLength/2)
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+f.target+r.URL.RequestURI(), body)
	if err != nil {
		panic(err)
	}
	out.Header = r.Header.Clone()
	out.Host = r.Host // the signature covers the Host header
	out.ContentLength = r.ContentLength
	if r.ContentLength == 0 {
		out.Body = http.NoBody
	}
	resp, err := f.client.Do(out)
	if err != nil {
		// The gateway saw a broken request (or is down): so does the client.
		panic(http.ErrAbortHandler)
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	if fault == "cut-response" && resp.ContentLength <= 0 {
		panic(http.ErrAbortHandler) // the answer is lost before its headers
	}
	w.WriteHeader(resp.StatusCode)
	if fault == "cut-response" {
		io.CopyN(w, resp.Body, (resp.ContentLength+1)/2)
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	io.Copy(w, resp.Body)
}
