package s3store

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"

	"github.com/minio/minio-go/v7"
)

// opError is every error a Store method returns (besides the caller's
// own from List's fn): what was done to which key, and why it failed.
type opError struct {
	op, where string
	err       error
	notExist  bool
}

func (e *opError) Error() string {
	return fmt.Sprintf("s3store: %s %s: %s", e.op, e.where, describe(e.err))
}

func (e *opError) Unwrap() error { return e.err }

// Is makes a missing pack's error match fs.ErrNotExist.
func (e *opError) Is(target error) bool { return e.notExist && target == fs.ErrNotExist }

func (s *Store) opErr(op, key string, err error) error {
	where := s.cfg.URL()
	if key != "" {
		where = fmt.Sprintf("%s%s://%s/%s/%s", URLScheme, s.scheme(), s.cfg.Endpoint, s.cfg.Bucket, key)
	}
	return &opError{op: op, where: where, err: err}
}

func (s *Store) scheme() string {
	if s.cfg.Secure {
		return "https"
	}
	return "http"
}

// describe says what an S3 error means, with a hint for the common
// configuration mistakes.
func describe(err error) string {
	var resp minio.ErrorResponse
	if !errors.As(err, &resp) || resp.StatusCode == 0 {
		return err.Error()
	}
	msg := fmt.Sprintf("%d %s: %s", resp.StatusCode, resp.Code, resp.Message)
	if err.Error() != resp.Error() { // wrapped with more context (attempts, timeouts)
		msg = fmt.Sprintf("%s (%d %s)", err.Error(), resp.StatusCode, resp.Code)
	}
	switch resp.Code {
	case "InvalidAccessKeyId":
		msg += "; the server does not know this access key: check AWS_ACCESS_KEY_ID"
	case "SignatureDoesNotMatch":
		msg += "; the secret key does not match the access key: check AWS_SECRET_ACCESS_KEY"
	case "AccessDenied":
		msg += "; the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) are wrong or lack permission for this request"
	case "ExpiredToken", "InvalidToken", "TokenRefreshRequired":
		msg += "; the session token is expired or invalid: check AWS_SESSION_TOKEN"
	case "NoSuchBucket":
		msg += "; fix the bucket in the URL, or create the bucket"
	case "InvalidRegion", "AuthorizationHeaderMalformed", "PermanentRedirect", "IllegalLocationConstraintException":
		msg += "; the region is wrong: set AWS_REGION to the bucket's region"
		if resp.Region != "" {
			msg += " (the server says " + resp.Region + ")"
		}
	}
	return msg
}

// s3Status returns the HTTP status and S3 error code of err, if it is an
// answer from the server.
func s3Status(err error) (int, string) {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		return resp.StatusCode, resp.Code
	}
	return 0, ""
}

// isNoSuchKey says whether the server answered that the key does not
// exist. For a HEAD (no body, so no code) minio-go reports every 404 as
// NoSuchKey: the callers confirm with bucketExists.
func isNoSuchKey(err error) bool {
	status, code := s3Status(err)
	return status == http.StatusNotFound && (code == "NoSuchKey" || code == "NotFound")
}

func isNoSuchUpload(err error) bool {
	_, code := s3Status(err)
	return code == "NoSuchUpload"
}
