package s3store

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
)

// RetryPolicy says how often and how patiently a request is retried.
type RetryPolicy struct {
	// MaxAttempts is the number of tries of one request, the first
	// included (1: no retries). Default 8.
	MaxAttempts int
	// BaseDelay is the backoff before the second try; it doubles with
	// every further try up to MaxDelay, and each wait is drawn at random
	// from [d/2, d] (jitter). Defaults 100 ms and 5 s.
	BaseDelay, MaxDelay time.Duration
	// AttemptTimeout bounds one try of a request that moves no payload;
	// a try moving n bytes gets AttemptTimeout + n / MinRate. A try that
	// outlives its deadline is a timeout and is retried. Defaults 30 s and
	// 256 KiB/s.
	AttemptTimeout time.Duration
	MinRate        int64
}

// DefaultRetry is the policy used for zero fields of Options.Retry.
var DefaultRetry = RetryPolicy{
	MaxAttempts:    8,
	BaseDelay:      100 * time.Millisecond,
	MaxDelay:       5 * time.Second,
	AttemptTimeout: 30 * time.Second,
	MinRate:        256 << 10,
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	d := DefaultRetry
	if p.MaxAttempts > 0 {
		d.MaxAttempts = p.MaxAttempts
	}
	if p.BaseDelay > 0 {
		d.BaseDelay = p.BaseDelay
	}
	if p.MaxDelay > 0 {
		d.MaxDelay = p.MaxDelay
	}
	if p.AttemptTimeout > 0 {
		d.AttemptTimeout = p.AttemptTimeout
	}
	if p.MinRate > 0 {
		d.MinRate = p.MinRate
	}
	return d
}

// backoff is the wait after try number attempt (0-based) failed.
func (p RetryPolicy) backoff(attempt int) time.Duration {
	d := p.MaxDelay
	if attempt < 30 {
		d = min(p.BaseDelay<<attempt, p.MaxDelay)
	}
	return d/2 + rand.N(d/2+1)
}

func (p RetryPolicy) timeout(payload int64) time.Duration {
	return p.AttemptTimeout + time.Duration(float64(payload)/float64(p.MinRate)*float64(time.Second))
}

// errAttemptTimeout marks a try that ran out of its own time.
var errAttemptTimeout = errors.New("request timed out")

// transient marks an error as worth another try whatever its type (a
// response body that broke off).
type transient struct{ err error }

func (t transient) Error() string { return t.err.Error() }
func (t transient) Unwrap() error { return t.err }

// do runs fn until it succeeds, fails for good, the attempts are used up
// or ctx ends. Each try gets a context with the try's deadline (payload:
// bytes the try moves). fn's error is judged by retryable.
func (s *Store) do(ctx context.Context, payload int64, fn func(ctx context.Context) error) error {
	p := s.retry
	var last error
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return ctxError(err, last)
		}
		actx, cancel := context.WithTimeoutCause(ctx, p.timeout(payload), errAttemptTimeout)
		err := fn(actx)
		timedOut := errors.Is(context.Cause(actx), errAttemptTimeout)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctxError(ctx.Err(), err)
		}
		if timedOut {
			err = fmt.Errorf("%w after %v: %w", errAttemptTimeout, p.timeout(payload), err)
		}
		s.stats.failures.Add(1)
		if !timedOut && !retryable(err) {
			return err
		}
		last = err
		if attempt+1 >= p.MaxAttempts {
			return fmt.Errorf("giving up after %d attempts: %w", p.MaxAttempts, err)
		}
		s.stats.retries.Add(1)
		t := time.NewTimer(p.backoff(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctxError(ctx.Err(), last)
		case <-t.C:
		}
	}
}

// ctxError wraps a context's error and says what failed before, if anything.
func ctxError(ctxErr, last error) error {
	if last == nil {
		return ctxErr
	}
	return fmt.Errorf("%w (last error: %v)", ctxErr, last)
}

// retryable says whether a failed request is worth another try: 5xx,
// throttling and timeout answers, and network failures. Other 4xx
// answers are not.
func retryable(err error) bool {
	if err == nil {
		return false
	}
	var t transient
	if errors.As(err, &t) {
		return true
	}
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		switch resp.Code {
		case "SlowDown", "SlowDownRead", "SlowDownWrite", "Throttling", "ThrottlingException",
			"RequestThrottled", "RequestLimitExceeded", "RequestTimeout",
			"InternalError", "ServiceUnavailable":
			return true
		}
		switch {
		case resp.StatusCode >= 500:
			return true
		case resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode == http.StatusRequestTimeout:
			return true
		case resp.StatusCode != 0:
			return false
		}
		// StatusCode 0: minio-go's own checks (invalid argument and the
		// like), not an answer from the server.
		return false
	}
	if errors.Is(err, context.Canceled) {
		return false // only the caller's context cancels, and do checks it first
	}
	var x509Err x509.UnknownAuthorityError
	var certErr *x509.CertificateInvalidError
	var hostErr x509.HostnameError
	if errors.As(err, &x509Err) || errors.As(err, &certErr) || errors.As(err, &hostErr) {
		return false
	}
	var netErr net.Error
	var urlErr *url.Error
	switch {
	case errors.As(err, &netErr), errors.As(err, &urlErr):
		return true
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.EPIPE), errors.Is(err, context.DeadlineExceeded):
		return true
	}
	return false
}
