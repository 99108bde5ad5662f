package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"mis/repo"
)

// Options tune a Store; zero fields take the defaults.
type Options struct {
	// MultipartThreshold: packs up to this size go in one PUT, larger
	// ones as a multipart upload. Default 64 MiB.
	MultipartThreshold int64
	// PartSize is the size of a multipart upload's parts, at least
	// 5 MiB (S3's minimum for all but the last part). Default 16 MiB.
	PartSize int64
	// Parallel bounds the requests one call issues at once (parts of one
	// Put, aborts of RemoveIncomplete). Default 4.
	Parallel int
	// Retry is the retry policy (DefaultRetry for zero fields).
	Retry RetryPolicy
	// Transport carries the HTTP requests. Default: minio-go's default
	// transport.
	Transport http.RoundTripper
}

const (
	defaultMultipartThreshold = 64 << 20
	defaultPartSize           = 16 << 20
	defaultParallel           = 4
	minPartSize               = 5 << 20
	defaultListPage           = 1000 // S3's maximum
)

// Store is a repo.PackStore in an S3 bucket. It is safe for concurrent
// use.
type Store struct {
	cfg    Config
	core   *minio.Core
	opts   Options
	retry  RetryPolicy
	packs  string // key prefix of the packs: PREFIX/packs/
	stats  counters
	bucket string
	// listPage is the most keys or uploads one LIST asks for.
	listPage int
}

type counters struct {
	retries, failures atomic.Int64
}

// Stats counts what the retry loop saw.
type Stats struct {
	// Failures is the number of failed tries, Retries how many of them
	// were tried again.
	Failures, Retries int64
}

var _ repo.PackStore = (*Store)(nil)

// New returns a store for cfg. It sends no request: Check or
// EnsureBucket prove that the bucket is there.
func New(cfg Config, opts Options) (*Store, error) {
	if err := checkBucketName(cfg.Bucket); err != nil {
		return nil, err
	}
	if cfg.Endpoint == "" {
		return nil, errors.New("s3store: no endpoint")
	}
	if cfg.Prefix != "" && !strings.HasSuffix(cfg.Prefix, "/") {
		return nil, fmt.Errorf("s3store: prefix %q does not end in /", cfg.Prefix)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if opts.MultipartThreshold <= 0 {
		opts.MultipartThreshold = defaultMultipartThreshold
	}
	if opts.PartSize <= 0 {
		opts.PartSize = defaultPartSize
	}
	if opts.PartSize < minPartSize {
		return nil, fmt.Errorf("s3store: part size %d is below S3's minimum of 5 MiB", opts.PartSize)
	}
	if opts.Parallel <= 0 {
		opts.Parallel = defaultParallel
	}
	tr := opts.Transport
	if tr == nil {
		t, err := minio.DefaultTransport(cfg.Secure)
		if err != nil {
			return nil, err
		}
		t.MaxIdleConnsPerHost = max(t.MaxIdleConnsPerHost, 4*opts.Parallel)
		tr = t
	}
	core, err := minio.NewCore(cfg.Endpoint, &minio.Options{
		Creds:      credentials.NewStaticV4(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken),
		Secure:     cfg.Secure,
		Region:     cfg.Region,
		Transport:  tr,
		MaxRetries: 1, // our retry loop (do) is the only one
	})
	if err != nil {
		return nil, fmt.Errorf("s3store: %s: %w", cfg, err)
	}
	return &Store{
		cfg:      cfg,
		core:     core,
		opts:     opts,
		retry:    opts.Retry.withDefaults(),
		packs:    cfg.Prefix + "packs/",
		bucket:   cfg.Bucket,
		listPage: defaultListPage,
	}, nil
}

// Config returns the store's configuration.
func (s *Store) Config() Config { return s.cfg }

// Stats returns the retry counters since New.
func (s *Store) Stats() Stats {
	return Stats{Failures: s.stats.failures.Load(), Retries: s.stats.retries.Load()}
}

// String describes the store without secrets.
func (s *Store) String() string { return s.cfg.String() }

func (s *Store) key(name string) string { return s.packs + name[:2] + "/" + name + ".pack" }

// nameOf returns the pack name of a key under s.packs, if it is one.
func (s *Store) nameOf(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, s.packs)
	if !ok || len(rest) != 2+1+64+len(".pack") || rest[2] != '/' || !strings.HasSuffix(rest, ".pack") {
		return "", false
	}
	name := rest[3 : 3+64]
	if !validName(name) || name[:2] != rest[:2] {
		return "", false
	}
	return name, true
}

func validName(name string) bool {
	if len(name) != 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func checkName(name string) error {
	if !validName(name) {
		return fmt.Errorf("s3store: invalid pack name %q", name)
	}
	return nil
}

// Check proves that the bucket exists and the credentials may list the
// store (one LIST request).
func (s *Store) Check(ctx context.Context) error {
	fetchOwner := false
	err := s.do(ctx, 0, func(ctx context.Context) error {
		lctx, cancel := context.WithCancel(ctx)
		defer cancel()
		for obj := range s.core.ListObjectsIter(lctx, s.bucket, minio.ListObjectsOptions{
			Prefix: s.packs, Recursive: true, MaxKeys: 1, FetchOwner: &fetchOwner,
		}) {
			return obj.Err
		}
		return ctx.Err()
	})
	if err != nil {
		return s.opErr("check", "", err)
	}
	return nil
}

// EnsureBucket creates the bucket if it does not exist.
func (s *Store) EnsureBucket(ctx context.Context) error {
	var exists bool
	err := s.do(ctx, 0, func(ctx context.Context) error {
		var err error
		exists, err = s.core.BucketExists(ctx, s.bucket)
		return err
	})
	if err != nil {
		return s.opErr("look up bucket", "", err)
	}
	if exists {
		return nil
	}
	err = s.do(ctx, 0, func(ctx context.Context) error {
		err := s.core.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{Region: s.cfg.Region})
		if _, code := s3Status(err); code == "BucketAlreadyOwnedByYou" {
			return nil // an earlier try that lost its answer, or a race with ourselves
		}
		return err
	})
	if err != nil {
		return s.opErr("create bucket", "", err)
	}
	return nil
}

// bucketExists tells a 404 for a missing key from one for a missing
// bucket (a HEAD answer has no error code).
func (s *Store) bucketExists(ctx context.Context) (bool, error) {
	var exists bool
	err := s.do(ctx, 0, func(ctx context.Context) error {
		var err error
		exists, err = s.core.BucketExists(ctx, s.bucket)
		return err
	})
	return exists, err
}

// readError turns a failed HEAD or GET of key into the error to return:
// not-exist only for a missing key in an existing bucket.
func (s *Store) readError(ctx context.Context, op, key string, err error) error {
	if !isNoSuchKey(err) {
		return s.opErr(op, key, err)
	}
	exists, berr := s.bucketExists(ctx)
	switch {
	case berr != nil:
		return s.opErr(op, key, fmt.Errorf("%w; then checking that the bucket exists: %w", err, berr))
	case !exists:
		return s.opErr(op, key, minio.ErrorResponse{StatusCode: http.StatusNotFound, Code: "NoSuchBucket",
			Message: "The specified bucket does not exist", BucketName: s.bucket})
	}
	e := s.opErr(op, key, err).(*opError)
	e.notExist = true
	return e
}

// Stat implements repo.PackStore with one HEAD.
func (s *Store) Stat(ctx context.Context, name string) (int64, error) {
	if err := checkName(name); err != nil {
		return 0, err
	}
	key := s.key(name)
	var info minio.ObjectInfo
	err := s.do(ctx, 0, func(ctx context.Context) error {
		var err error
		info, err = s.core.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
		return err
	})
	if err != nil {
		return 0, s.readError(ctx, "stat", key, err)
	}
	return info.Size, nil
}

// Open implements repo.PackStore: a HEAD for the size; the reader issues
// ranged GETs.
func (s *Store) Open(ctx context.Context, name string) (repo.PackReader, error) {
	size, err := s.Stat(ctx, name)
	if err != nil {
		return nil, err
	}
	return &reader{s: s, key: s.key(name), size: size}, nil
}

type reader struct {
	s    *Store
	key  string
	size int64
}

func (r *reader) Size() int64  { return r.size }
func (r *reader) Close() error { return nil }

// ReadAt reads with one ranged GET, resuming after a broken body.
func (r *reader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, r.s.opErr("read", r.key, err)
	}
	if off < 0 {
		return 0, r.s.opErr("read", r.key, fmt.Errorf("negative offset %d", off))
	}
	if off >= r.size {
		if len(p) == 0 && off == r.size {
			return 0, nil
		}
		return 0, io.EOF
	}
	want := int(min(int64(len(p)), r.size-off))
	n := 0
	err := r.s.do(ctx, int64(want), func(ctx context.Context) error {
		k, err := r.s.getRange(ctx, r.key, p[n:want], off+int64(n), r.size)
		n += k
		return err
	})
	if err != nil {
		return n, r.s.readError(ctx, "read", r.key, err)
	}
	if want < len(p) {
		return want, io.EOF
	}
	return want, nil
}

// getRange fills buf from key at off with one GET; size is the object's
// size as Open saw it. It returns how many bytes it got.
func (s *Store) getRange(ctx context.Context, key string, buf []byte, off, size int64) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	last := off + int64(len(buf)) - 1
	var opts minio.GetObjectOptions
	if err := opts.SetRange(off, last); err != nil {
		return 0, err
	}
	body, _, hdr, err := s.core.GetObject(ctx, s.bucket, key, opts)
	if err != nil {
		return 0, err
	}
	defer body.Close()
	cr := hdr.Get("Content-Range")
	if start, end, total, ok := parseContentRange(cr); !ok || start != off || end != last || total != size {
		return 0, fmt.Errorf("asked for bytes %d-%d of %d, got Content-Range %q", off, last, size, cr)
	}
	k, err := io.ReadFull(body, buf)
	if err != nil {
		return k, transient{fmt.Errorf("response body broke off after %d of %d bytes: %w", k, len(buf), err)}
	}
	return k, nil
}

// parseContentRange reads "bytes START-END/TOTAL".
func parseContentRange(v string) (start, end, total int64, ok bool) {
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, 0, 0, false
	}
	rng, tot, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, 0, false
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	start, err1 = strconv.ParseInt(a, 10, 64)
	end, err2 = strconv.ParseInt(b, 10, 64)
	total, err3 = strconv.ParseInt(tot, 10, 64)
	return start, end, total, err1 == nil && err2 == nil && err3 == nil
}

// List implements repo.PackStore: LIST pages of up to 1000 keys, each
// page one retried request, fn called between pages. S3 lists keys in
// byte order, which is name order for this layout; a server that does
// not is an error, not a silently wrong order.
func (s *Store) List(ctx context.Context, fn func(name string, size int64) error) error {
	if err := ctx.Err(); err != nil {
		return s.opErr("list", s.packs, err)
	}
	after := ""
	fetchOwner := false
	page := make([]minio.ObjectInfo, 0, s.listPage)
	for {
		more := false
		err := s.do(ctx, 0, func(ctx context.Context) error {
			page, more = page[:0], false
			lctx, cancel := context.WithCancel(ctx)
			defer cancel()
			for obj := range s.core.ListObjectsIter(lctx, s.bucket, minio.ListObjectsOptions{
				Prefix: s.packs, Recursive: true, StartAfter: after, MaxKeys: s.listPage, FetchOwner: &fetchOwner,
			}) {
				if obj.Err != nil {
					return obj.Err
				}
				page = append(page, obj)
				if len(page) == s.listPage {
					more = true
					break
				}
			}
			// minio-go ends the iteration silently when its context
			// ends between pages: that is not the end of the listing.
			return ctx.Err()
		})
		if err != nil {
			return s.opErr("list", s.packs, err)
		}
		for _, obj := range page {
			if obj.Key <= after {
				return s.opErr("list", s.packs, fmt.Errorf("the server listed %q after %q: not in key order", obj.Key, after))
			}
			after = obj.Key
			name, ok := s.nameOf(obj.Key)
			if !ok {
				continue
			}
			if err := fn(name, obj.Size); err != nil {
				return err
			}
		}
		if !more {
			return nil
		}
	}
}

// Remove implements repo.PackStore with one DELETE (S3 answers a DELETE
// of a missing key with success).
func (s *Store) Remove(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	key := s.key(name)
	err := s.do(ctx, 0, func(ctx context.Context) error {
		err := s.core.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{})
		if isNoSuchKey(err) {
			return nil
		}
		return err
	})
	if err != nil {
		return s.opErr("remove", key, err)
	}
	return nil
}

// Put implements repo.PackStore: one PUT up to MultipartThreshold bytes,
// a multipart upload above.
func (s *Store) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if err := checkName(name); err != nil {
		return err
	}
	key := s.key(name)
	if err := ctx.Err(); err != nil {
		return s.opErr("put", key, err)
	}
	if size < 0 {
		return s.opErr("put", key, fmt.Errorf("negative size %d", size))
	}
	var err error
	if size <= s.opts.MultipartThreshold {
		err = s.putSingle(ctx, key, r, size)
	} else {
		err = s.putMultipart(ctx, key, r, size)
	}
	if err != nil {
		return s.opErr("put", key, err)
	}
	return nil
}

// source returns r's first size bytes as a ReaderAt without copying when
// r is an in-memory reader holding them (the repository's writer passes
// a *bytes.Reader), else nil.
func source(r io.Reader, size int64) io.ReaderAt {
	if br, ok := r.(*bytes.Reader); ok && int64(br.Len()) >= size {
		return io.NewSectionReader(br, br.Size()-int64(br.Len()), size)
	}
	return nil
}

// readPart reads exactly len(buf) bytes of r; fewer is an error.
func readPart(ctx context.Context, r io.Reader, buf []byte) error {
	n, err := io.ReadFull(ctxReader{ctx, r}, buf)
	if err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return fmt.Errorf("the pack's reader ended %d bytes early: %w", len(buf)-n, io.ErrUnexpectedEOF)
		}
		return fmt.Errorf("read pack: %w", err)
	}
	return nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func (s *Store) putSingle(ctx context.Context, key string, r io.Reader, size int64) error {
	src := source(r, size)
	if src == nil {
		// The whole pack is read before the first request, so a failing
		// reader sends nothing and every retry resends the same bytes.
		buf := make([]byte, size)
		if err := readPart(ctx, r, buf); err != nil {
			return err
		}
		src = bytes.NewReader(buf)
	}
	return s.do(ctx, size, func(ctx context.Context) error {
		_, err := s.core.PutObject(ctx, s.bucket, key, io.NewSectionReader(src, 0, size), size, "", "",
			minio.PutObjectOptions{ContentType: "application/octet-stream"})
		return err
	})
}

// putMultipart uploads parts Parallel at a time and completes the upload
// (which makes the object visible) only when all are stored; on failure
// it aborts the upload.
func (s *Store) putMultipart(ctx context.Context, key string, r io.Reader, size int64) (err error) {
	var uploadID string
	err = s.do(ctx, 0, func(ctx context.Context) error {
		var err error
		uploadID, err = s.core.NewMultipartUpload(ctx, s.bucket, key, minio.PutObjectOptions{ContentType: "application/octet-stream"})
		return err
	})
	if err != nil {
		return fmt.Errorf("start multipart upload: %w", err)
	}
	defer func() {
		if err != nil {
			if aerr := s.abort(ctx, key, uploadID); aerr != nil {
				err = fmt.Errorf("%w (and aborting upload %s failed, RemoveIncomplete will retry: %v)", err, uploadID, aerr)
			}
		}
	}()

	psize := s.opts.PartSize
	nparts := int((size + psize - 1) / psize)
	parts := make([]minio.CompletePart, nparts)
	src := source(r, size)
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// slots bounds the parts in flight and recycles their buffers.
	slots := make(chan []byte, s.opts.Parallel)
	for range s.opts.Parallel {
		slots <- nil
	}
	var wg sync.WaitGroup
	var readErr error
	for i := range nparts {
		off := int64(i) * psize
		n := min(psize, size-off)
		var buf []byte
		select {
		case buf = <-slots:
		case <-pctx.Done():
		}
		if pctx.Err() != nil {
			break
		}
		var part io.ReaderAt
		if src != nil {
			part = io.NewSectionReader(src, off, n)
		} else {
			if buf == nil {
				buf = make([]byte, psize)
			}
			if err := readPart(pctx, r, buf[:n]); err != nil {
				slots <- buf
				if pctx.Err() == nil { // else a part failed or ctx ended: reported below
					readErr = err
					cancel(err)
				}
				break
			}
			part = bytes.NewReader(buf[:n])
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { slots <- buf }()
			err := s.do(pctx, n, func(ctx context.Context) error {
				p, err := s.core.PutObjectPart(ctx, s.bucket, key, uploadID, i+1, io.NewSectionReader(part, 0, n), n, minio.PutObjectPartOptions{})
				parts[i] = minio.CompletePart{PartNumber: i + 1, ETag: p.ETag}
				return err
			})
			if err != nil {
				cancel(fmt.Errorf("upload part %d of %d: %w", i+1, nparts, err))
			}
		}()
	}
	wg.Wait()
	switch {
	case readErr != nil:
		return readErr
	case ctx.Err() != nil:
		return ctxError(ctx.Err(), context.Cause(pctx))
	case pctx.Err() != nil:
		return context.Cause(pctx)
	}

	tried := false
	return s.do(ctx, 0, func(ctx context.Context) error {
		_, err := s.core.CompleteMultipartUpload(ctx, s.bucket, key, uploadID, parts, minio.PutObjectOptions{})
		if err != nil && tried && isNoSuchUpload(err) {
			// An earlier try completed the upload but its answer was lost.
			info, serr := s.core.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
			if serr == nil && info.Size == size {
				return nil
			}
		}
		tried = true
		if err != nil {
			return fmt.Errorf("complete multipart upload: %w", err)
		}
		return nil
	})
}

// abort aborts a multipart upload, also when ctx was cancelled (with a
// bounded wait of its own).
func (s *Store) abort(ctx context.Context, key, uploadID string) error {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.retry.timeout(0))
	defer cancel()
	return s.do(actx, 0, func(ctx context.Context) error {
		err := s.core.AbortMultipartUpload(ctx, s.bucket, key, uploadID)
		if isNoSuchUpload(err) {
			return nil
		}
		return err
	})
}

// RemoveIncomplete implements repo.PackStore: it aborts every incomplete
// multipart upload under PREFIX/packs/, Parallel at a time.
//
// It lists a page of uploads, aborts them, and lists again from the
// start until a listing is complete, instead of paging with key and
// upload-id markers: versitygw 1.8.0 rejects the markers it hands out
// ("400 InvalidArgument: Invalid uploadId marker", see TestPaging), and
// aborted uploads drop out of the listing anyway.
func (s *Store) RemoveIncomplete(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, s.opErr("remove incomplete uploads", s.packs, err)
	}
	removed, stuck := 0, 0
	for {
		var res minio.ListMultipartUploadsResult
		err := s.do(ctx, 0, func(ctx context.Context) error {
			var err error
			res, err = s.core.ListMultipartUploads(ctx, s.bucket, s.packs, "", "", "", s.listPage)
			return err
		})
		if err != nil {
			return removed, s.opErr("list incomplete uploads", s.packs, err)
		}
		n, gone, err := s.abortAll(ctx, res.Uploads)
		removed += n
		if err != nil {
			return removed, err
		}
		if !res.IsTruncated {
			return removed, nil
		}
		// A page of uploads that are all gone already (a listing that
		// lags behind the aborts) is listed again, but not forever.
		if stuck++; n > 0 {
			stuck = 0
		}
		if stuck == 3 {
			return removed, s.opErr("list incomplete uploads", s.packs,
				fmt.Errorf("the server keeps listing %d uploads that are gone", gone))
		}
	}
}

// abortAll aborts uploads, Parallel at a time. It returns how many it
// aborted and how many were already gone.
func (s *Store) abortAll(ctx context.Context, uploads []minio.ObjectMultipartInfo) (removed, gone int, err error) {
	var nRemoved, nGone atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, s.opts.Parallel)
	for _, u := range uploads {
		if !strings.HasPrefix(u.Key, s.packs) {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			wasGone := false
			err := s.do(ctx, 0, func(ctx context.Context) error {
				err := s.core.AbortMultipartUpload(ctx, s.bucket, u.Key, u.UploadID)
				if isNoSuchUpload(err) {
					wasGone, err = true, nil
				}
				return err
			})
			switch {
			case err != nil:
				mu.Lock()
				if firstErr == nil {
					firstErr = s.opErr("abort upload "+u.UploadID+" of", u.Key, err)
				}
				mu.Unlock()
			case wasGone:
				nGone.Add(1)
			default:
				nRemoved.Add(1)
			}
		}()
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = s.opErr("remove incomplete uploads", s.packs, ctx.Err())
	}
	return int(nRemoved.Load()), int(nGone.Load()), firstErr
}
