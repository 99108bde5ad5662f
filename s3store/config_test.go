package s3store

import (
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

var creds = map[string]string{"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "SECRET"}

func TestParseURL(t *testing.T) {
	good := []struct {
		url  string
		want Config
	}{
		{"s3:http://127.0.0.1:7070/bucket", Config{Endpoint: "127.0.0.1:7070", Bucket: "bucket"}},
		{"s3:https://s3.eu-west-1.amazonaws.com/my.bucket-1/some/prefix",
			Config{Endpoint: "s3.eu-west-1.amazonaws.com", Secure: true, Bucket: "my.bucket-1", Prefix: "some/prefix/"}},
		{"s3:http://minio.local:9000/bkt/repo/", Config{Endpoint: "minio.local:9000", Bucket: "bkt", Prefix: "repo/"}},
		{"s3:http://[::1]:7070/bkt/p", Config{Endpoint: "[::1]:7070", Bucket: "bkt", Prefix: "p/"}},
		{"s3:https://host/bkt", Config{Endpoint: "host", Secure: true, Bucket: "bkt"}},
	}
	for _, g := range good {
		c, err := parseURL(g.url, env(creds))
		if err != nil {
			t.Errorf("%s: %v", g.url, err)
			continue
		}
		g.want.AccessKeyID, g.want.SecretAccessKey, g.want.Region = "AKID", "SECRET", "us-east-1"
		if c != g.want {
			t.Errorf("%s:\n got %+v\nwant %+v", g.url, c, g.want)
		}
		// URL gives back what ParseURL reads.
		if c2, err := parseURL(c.URL(), env(creds)); err != nil || c2 != c {
			t.Errorf("%s: URL() %s parses as %+v, %v", g.url, c.URL(), c2, err)
		}
	}

	bad := []struct{ url, msg string }{
		{"http://host/bucket", `does not start with "s3:"`},
		{"s3://host/bucket", "no http:// or https://"},
		{"s3:ftp://host/bucket", `scheme "ftp" is not http or https`},
		{"s3:http:///bucket", "no host"},
		{"s3:http://host", "no bucket"},
		{"s3:http://host/", "no bucket"},
		{"s3:http://host:99999/bucket", `bad port "99999"`},
		{"s3:http://host:/bucket", "empty port"},
		{"s3:http://key:secret@host/bucket", "credentials do not go in the URL"},
		{"s3:http://host/bucket?x=1", "query strings"},
		{"s3:http://host/bucket#f", "fragments"},
		{"s3:http://host/Bucket", "lowercase"},
		{"s3:http://host/ab", "3 to 63"},
		{"s3:http://host/-bucket", "start and end"},
		{"s3:http://host/bu..cket", "adjacent dots"},
		{"s3:http://host/192.168.1.1", "IP address"},
		{"s3:http://host/bucket/a//b", "empty, . or .. segment"},
		{"s3:http://host/bucket/a/../b", "empty, . or .. segment"},
		{"s3:http://host/bucket/a%2Fb", "escaped"},
	}
	for _, b := range bad {
		_, err := parseURL(b.url, env(creds))
		if err == nil || !strings.Contains(err.Error(), b.msg) {
			t.Errorf("%s: %v; want an error containing %q", b.url, err, b.msg)
		}
		if err != nil && strings.Contains(err.Error(), "secret@") {
			t.Errorf("%s: the error shows the secret: %v", b.url, err)
		}
	}
}

func TestParseURLEnvironment(t *testing.T) {
	const u = "s3:http://host/bucket"
	for _, tc := range []struct {
		env  map[string]string
		msg  string
		want Config
	}{
		{env: map[string]string{}, msg: "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"},
		{env: map[string]string{"AWS_ACCESS_KEY_ID": "a"}, msg: "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"},
		{env: map[string]string{"AWS_SECRET_ACCESS_KEY": "s"}, msg: "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not"},
		{env: map[string]string{"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "SECRETVALUE", "AWS_SESSION_TOKEN": "tok", "AWS_REGION": "eu-central-1", "AWS_DEFAULT_REGION": "x"},
			want: Config{Endpoint: "host", Bucket: "bucket", AccessKeyID: "a", SecretAccessKey: "SECRETVALUE", SessionToken: "tok", Region: "eu-central-1"}},
		{env: map[string]string{"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "SECRETVALUE", "AWS_DEFAULT_REGION": "ap-south-1"},
			want: Config{Endpoint: "host", Bucket: "bucket", AccessKeyID: "a", SecretAccessKey: "SECRETVALUE", Region: "ap-south-1"}},
	} {
		c, err := parseURL(u, env(tc.env))
		if tc.msg != "" {
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("env %v: %v; want an error containing %q", tc.env, err, tc.msg)
			}
			continue
		}
		if err != nil || c != tc.want {
			t.Errorf("env %v: %+v, %v; want %+v", tc.env, c, err, tc.want)
		}
		if strings.Contains(c.String(), c.SecretAccessKey) || strings.Contains(c.String(), "tok") {
			t.Errorf("String() shows a secret: %s", c)
		}
	}
}

func TestNewRejects(t *testing.T) {
	c := Config{Endpoint: "host", Bucket: "bucket"}
	if _, err := New(c, Options{PartSize: 1 << 20}); err == nil || !strings.Contains(err.Error(), "5 MiB") {
		t.Errorf("part size 1 MiB: %v", err)
	}
	if _, err := New(Config{Endpoint: "host", Bucket: "B"}, Options{}); err == nil {
		t.Error("bucket B accepted")
	}
	if _, err := New(Config{Endpoint: "host", Bucket: "bucket", Prefix: "p"}, Options{}); err == nil {
		t.Error("prefix without / accepted")
	}
}
