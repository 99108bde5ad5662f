package s3store

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// URLScheme starts every S3 store URL.
const URLScheme = "s3:"

// Config says where a store is and who it acts as.
type Config struct {
	// Endpoint is HOST[:PORT], without scheme.
	Endpoint string
	// Secure is true for https.
	Secure bool
	// Bucket holds the store.
	Bucket string
	// Prefix is "" or a key prefix ending in "/" under which everything
	// is stored (PREFIX/packs/...).
	Prefix string
	// Region is the bucket's region (signing needs it); default us-east-1.
	Region string
	// AccessKeyID, SecretAccessKey and SessionToken are the credentials.
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
}

// URL returns the store's URL in the form ParseURL reads (no credentials).
func (c Config) URL() string {
	scheme := "http"
	if c.Secure {
		scheme = "https"
	}
	return URLScheme + scheme + "://" + c.Endpoint + "/" + c.Bucket + "/" + strings.TrimSuffix(c.Prefix, "/")
}

// String describes the store without its secrets.
func (c Config) String() string {
	return fmt.Sprintf("%s (region %s, access key %s)", strings.TrimSuffix(c.URL(), "/"), c.Region, c.AccessKeyID)
}

// ParseURL reads a store URL, s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX],
// and takes the credentials and region from the environment:
// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (both required),
// AWS_SESSION_TOKEN (optional), AWS_REGION or AWS_DEFAULT_REGION
// (default us-east-1). Credentials in the URL are refused.
func ParseURL(raw string) (Config, error) {
	return parseURL(raw, os.Getenv)
}

func parseURL(raw string, getenv func(string) string) (Config, error) {
	var c Config
	bad := func(format string, args ...any) (Config, error) {
		return Config{}, fmt.Errorf("S3 store URL %q: %s (want s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX])",
			redactURL(raw), fmt.Sprintf(format, args...))
	}
	rest, ok := strings.CutPrefix(raw, URLScheme)
	if !ok {
		return bad("does not start with %q", URLScheme)
	}
	u, err := url.Parse(rest)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return bad("%v", err)
	}
	switch u.Scheme {
	case "http":
	case "https":
		c.Secure = true
	case "":
		return bad("no http:// or https:// after s3:")
	default:
		return bad("scheme %q is not http or https", u.Scheme)
	}
	if u.User != nil {
		return bad("credentials do not go in the URL; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	if u.Opaque != "" || u.Host == "" {
		return bad("no host")
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return bad("query strings and fragments are not allowed")
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return bad("no host")
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return bad("bad port %q", port)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return bad("empty port")
	}
	c.Endpoint = u.Host
	if strings.Contains(host, ":") { // IPv6 literal: keep its brackets
		c.Endpoint = net.JoinHostPort(host, port)
		if port == "" {
			c.Endpoint = "[" + host + "]"
		}
	}
	path := strings.TrimPrefix(u.Path, "/")
	if u.RawPath != "" || strings.ContainsAny(path, "%\\") {
		return bad("escaped or backslash characters in the path are not allowed")
	}
	bucket, prefix, _ := strings.Cut(path, "/")
	if bucket == "" {
		return bad("no bucket")
	}
	if err := checkBucketName(bucket); err != nil {
		return bad("%v", err)
	}
	c.Bucket = bucket
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix != "" {
		for _, seg := range strings.Split(prefix, "/") {
			if seg == "" || seg == "." || seg == ".." {
				return bad("prefix %q has an empty, . or .. segment", prefix)
			}
		}
		for _, r := range prefix {
			if r < 0x20 || r == 0x7f {
				return bad("prefix %q has a control character", prefix)
			}
		}
		c.Prefix = prefix + "/"
	}

	c.AccessKeyID = getenv("AWS_ACCESS_KEY_ID")
	c.SecretAccessKey = getenv("AWS_SECRET_ACCESS_KEY")
	c.SessionToken = getenv("AWS_SESSION_TOKEN")
	switch {
	case c.AccessKeyID == "" && c.SecretAccessKey == "":
		return Config{}, fmt.Errorf("S3 store %s: no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", c.URL())
	case c.AccessKeyID == "":
		return Config{}, fmt.Errorf("S3 store %s: AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not", c.URL())
	case c.SecretAccessKey == "":
		return Config{}, fmt.Errorf("S3 store %s: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not", c.URL())
	}
	c.Region = getenv("AWS_REGION")
	if c.Region == "" {
		c.Region = getenv("AWS_DEFAULT_REGION")
	}
	if c.Region == "" {
		c.Region = "us-east-1"
	}
	return c, nil
}

// checkBucketName applies the S3 bucket naming rules.
func checkBucketName(b string) error {
	if len(b) < 3 || len(b) > 63 {
		return fmt.Errorf("bucket name %q must be 3 to 63 characters", b)
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return fmt.Errorf("bucket name %q may hold only lowercase letters, digits, dots and hyphens", b)
		}
	}
	if !isAlnum(b[0]) || !isAlnum(b[len(b)-1]) {
		return fmt.Errorf("bucket name %q must start and end with a letter or digit", b)
	}
	if strings.Contains(b, "..") || strings.Contains(b, ".-") || strings.Contains(b, "-.") {
		return fmt.Errorf("bucket name %q has adjacent dots or a dot beside a hyphen", b)
	}
	if net.ParseIP(b) != nil {
		return fmt.Errorf("bucket name %q looks like an IP address", b)
	}
	return nil
}

func isAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// redactURL hides a password someone put in the URL.
func redactURL(raw string) string {
	rest, ok := strings.CutPrefix(raw, URLScheme)
	if !ok {
		return raw
	}
	u, err := url.Parse(rest)
	if err != nil || u.User == nil {
		return raw
	}
	return URLScheme + u.Redacted()
}
