package s3store

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io/fs"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/zeebo/blake3"

	"mis/s3store/s3test"
)

// faultyRates is what the fault tests inject: a quarter of the requests
// fail one way or another, and a quarter of the uploads on top.
var faultyRates = faultRates{
	Latency: 3 * time.Millisecond, CutRequest: 0.25,
	Err500: 0.08, Err503: 0.08, CutResponse: 0.08, Stall: 0.02,
}

// faultStore is a store reaching the gateway through a fault proxy, with
// short backoffs and attempt timeouts so that the test is quick.
func faultStore(t *testing.T, srv *s3test.Server, rates faultRates, attempts int) (*Store, *faultProxy) {
	proxy := newFaultProxy(t, srv.Endpoint, faultRates{}, 7)
	cfg := testConfig(srv, "faults/")
	cfg.Endpoint = proxy.Endpoint()
	s, err := New(cfg, Options{
		MultipartThreshold: 6 * mib, PartSize: 5 * mib, Parallel: 3,
		Retry: RetryPolicy{MaxAttempts: attempts, BaseDelay: 5 * time.Millisecond, MaxDelay: 100 * time.Millisecond,
			AttemptTimeout: 2 * time.Second, MinRate: 16 * mib},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	proxy.setRates(rates)
	return s, proxy
}

// TestFaults runs a whole workload (single and multipart puts, list,
// many ranged reads, stat, remove, RemoveIncomplete) through a proxy that
// answers 500 and 503 SlowDown, cuts responses and request bodies, stalls
// and delays. Every call must succeed through retries, and every byte read
// must be right.
func TestFaults(t *testing.T) {
	srv := s3test.Start(t)
	s, proxy := faultStore(t, srv, faultyRates, 25)
	ctx := context.Background()

	var packs []pack
	for i, size := range []int{100, 5000, 70_000, 300_000, 1 << 20, 3 << 20, 11 * mib, 16*mib + 3} {
		packs = append(packs, testPack(uint64(100+i), size))
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(packs))
	for _, p := range packs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.Put(ctx, p.name, bytes.NewReader(p.data), int64(len(p.data)))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("put through faults: %v", err)
		}
	}

	got := listNames(t, s)
	for _, p := range packs {
		if got[p.name] != int64(len(p.data)) {
			t.Fatalf("listed %v, missing %s (%d bytes)", got, p.name, len(p.data))
		}
	}
	if len(got) != len(packs) {
		t.Fatalf("listed %d packs, want %d", len(got), len(packs))
	}

	// Ranged reads, 4 readers at once.
	rng := rand.New(rand.NewPCG(1, 2))
	type job struct {
		p        pack
		off, len int
	}
	jobs := make(chan job)
	readErrs := make(chan error, 4)
	for range 4 {
		go func() {
			var first error
			for j := range jobs {
				pr, err := s.Open(ctx, j.p.name)
				if err != nil {
					first = errors.Join(first, err)
					continue
				}
				buf := make([]byte, j.len)
				n, err := pr.ReadAt(ctx, buf, int64(j.off))
				if n != j.len || !bytes.Equal(buf, j.p.data[j.off:j.off+j.len]) {
					first = errors.Join(first, errors.New("wrong bytes"), err)
				}
			}
			readErrs <- first
		}()
	}
	for range 200 {
		p := packs[rng.IntN(len(packs))]
		off := rng.IntN(len(p.data))
		jobs <- job{p, off, 1 + rng.IntN(min(len(p.data)-off, 400_000))}
	}
	close(jobs)
	for range 4 {
		if err := <-readErrs; err != nil {
			t.Fatalf("ranged reads through faults: %v", err)
		}
	}
	// Whole packs, checked against their names.
	for _, p := range packs {
		data, err := readAll(ctx, s, p.name)
		if err != nil {
			t.Fatal(err)
		}
		if sum := blake3.Sum256(data); hex.EncodeToString(sum[:]) != p.name {
			t.Fatalf("pack %s read back corrupt", p.name)
		}
	}

	// Remove half; the rest stays; removed ones are not-exist.
	for _, p := range packs[:4] {
		if err := s.Remove(ctx, p.name); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Stat(ctx, p.name); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("stat of a removed pack through faults: %v", err)
		}
	}
	if got := listNames(t, s); len(got) != len(packs)-4 {
		t.Fatalf("after removing 4 of %d: listed %d", len(packs), len(got))
	}
	// Lost answers to "start upload" leave uploads behind: they go.
	if _, err := s.RemoveIncomplete(ctx); err != nil {
		t.Fatal(err)
	}
	counts := proxy.Counts()
	proxy.setRates(faultRates{})
	if u := uploads(t, s); len(u) != 0 {
		t.Fatalf("uploads left after RemoveIncomplete: %v", u)
	}
	st := s.Stats()
	t.Logf("requests by fault: %v; store: %d failed tries, %d retries", counts, st.Failures, st.Retries)
	for _, f := range []string{"500", "503", "cut-response", "cut-request", "stall"} {
		if counts[f] == 0 {
			t.Errorf("no request got fault %s: the test proves nothing about it", f)
		}
	}
}

// TestFaultsWithoutRetries is the control: the same proxy with retries
// off makes calls fail, so TestFaults passes because of the retries.
// The failures must never claim that a stored pack does not exist.
func TestFaultsWithoutRetries(t *testing.T) {
	srv := s3test.Start(t)
	s, _ := faultStore(t, srv, faultRates{}, 1)
	ctx := context.Background()
	var packs []pack
	for i := range 30 {
		p := testPack(uint64(500+i), 20_000)
		if err := s.Put(ctx, p.name, bytes.NewReader(p.data), int64(len(p.data))); err != nil {
			t.Fatal(err)
		}
		packs = append(packs, p)
	}
	s2, proxy := faultStore(t, srv, faultyRates, 1)
	s2.cfg.Bucket, s2.bucket = s.bucket, s.bucket
	s2.packs = s.packs
	proxy.setRates(faultyRates)
	failed := 0
	for _, p := range packs {
		data, err := readAll(ctx, s2, p.name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			t.Fatalf("a fault made a stored pack look missing: %v", err)
		case err != nil:
			failed++
		case !bytes.Equal(data, p.data):
			t.Fatal("wrong bytes without an error")
		}
	}
	if failed == 0 {
		t.Fatal("no read failed without retries: the proxy injects nothing")
	}
	t.Logf("%d of %d reads failed without retries", failed, len(packs))
}

// TestReadResumes cuts every GET response after half its body: a read
// succeeds only because each retry asks for what is still missing (about
// 21 tries for 1 MiB), and the bytes must be right.
func TestReadResumes(t *testing.T) {
	srv := s3test.Start(t)
	s, proxy := faultStore(t, srv, faultRates{}, 25)
	ctx := context.Background()
	p := testPack(9, 1<<20)
	if err := s.Put(ctx, p.name, bytes.NewReader(p.data), int64(len(p.data))); err != nil {
		t.Fatal(err)
	}
	proxy.setRates(faultRates{CutResponse: 1, Only: "GET"})
	before := s.Stats().Retries
	data, err := readAll(ctx, s, p.name)
	if err != nil || !bytes.Equal(data, p.data) {
		t.Fatalf("read with every response cut: %v", err)
	}
	retries := s.Stats().Retries - before
	t.Logf("%d retries, fault counts %v", retries, proxy.Counts())
	if retries < 15 {
		t.Fatalf("only %d retries: the responses were not cut", retries)
	}
}
