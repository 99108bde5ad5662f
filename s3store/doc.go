// Package s3store keeps a repository's packs in an S3-compatible object
// store: it implements repo.PackStore on minio-go.
//
// Why a package of its own: the repository (package repo) knows packs only
// through the PackStore contract (names, not-exist, atomicity, context,
// concurrency), and everything S3-specific (signing, retries, multipart
// uploads, error codes, URL and credential conventions) stays here, so
// repo stays free of network code and a second object-store backend would
// sit beside this one. This is step 1 of "repositories on S3": packs only;
// the chunk index and metadata are still in the local Badger database.
//
// # Object layout
//
//	PREFIX/packs/<2 hex>/<64 hex>.pack   one object per pack, its name the
//	                                     BLAKE3-256 of its content
//
// The two-hex-digit level mirrors the local layout (packs/ab/...) and
// keeps S3 listing order equal to pack-name order. Objects under
// PREFIX/packs/ that do not have this form are ignored by List.
//
// # Writes
//
// Put sends a pack of at most Options.MultipartThreshold bytes (default
// 64 MiB) as one PutObject, which S3 makes visible atomically; a larger
// pack goes as a multipart upload of Options.PartSize parts (default
// 16 MiB, Options.Parallel at a time), visible only when
// CompleteMultipartUpload succeeds. A failed Put aborts its upload; one
// interrupted by a crash leaves an incomplete multipart upload, invisible
// to GET and LIST, that RemoveIncomplete aborts (every incomplete upload
// under PREFIX/packs/).
//
// # Reads
//
// Open issues one HEAD for the size; ReadAt issues one ranged GET for
// the bytes asked (clipped to the size) and resumes from where a broken
// response body stopped. A response whose Content-Range does not match
// the request is an error, never data.
//
// # Not exist
//
// A missing pack is an error wrapping fs.ErrNotExist only when S3 says
// the key does not exist: a 404 NoSuchKey, confirmed by a HEAD of the
// bucket (a HEAD answer carries no error code, so a missing bucket would
// look the same). A missing bucket, 403 (S3 answers 403 for a missing key
// when the caller may not list the bucket), and every other failure are
// errors that do not wrap it: a misconfigured store must never make gc
// or a reader believe that packs are gone.
//
// # Retries
//
// Each request is retried with exponential backoff and jitter
// (Options.Retry; default 8 tries, waits drawn from [d/2, d] with d doubling from
// 100 ms to 5 s) when the answer is 5xx, a throttling or timeout answer
// (503 SlowDown, 429, 408, 400 RequestTimeout), a network error, a
// response body that broke off, or a try that outlived its own deadline
// (30 s plus the payload at 256 KiB/s); never on another 4xx. minio-go's
// own retries are switched off so that this is the one policy. A
// cancelled context stops everything at once, and the error wraps
// ctx.Err(). Stats counts failed and retried tries.
//
// Retried writes are safe because a name always stands for the same
// bytes: a PUT whose answer was lost and is sent again stores the same
// object; a CompleteMultipartUpload whose answer was lost is recognised
// (NoSuchUpload, and the object is there with the right size); a lost
// answer to CreateMultipartUpload leaves an upload RemoveIncomplete
// aborts.
//
// # Configuration
//
// ParseURL reads the form s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX] and the
// credentials from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
// AWS_SESSION_TOKEN, the region from AWS_REGION (or AWS_DEFAULT_REGION,
// else us-east-1), as S3 tools do. New makes a Store (no request);
// Store.EnsureBucket creates the bucket if it is missing and Store.Check
// proves the bucket is reachable with these credentials.
package s3store
