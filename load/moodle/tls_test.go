package moodle_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cmissync/cmissync/load/moodle"
)

// tlsServer is an HTTPS server on loopback with its own certificate, which
// counts the connections it accepts (every TLS handshake is a new one).
func tlsServer(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"sitename":"TLS site","functions":[]}`)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are expected
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, &conns
}

// writeCA writes the server's certificate as a PEM file.
func writeCA(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTLS(t *testing.T) {
	srv, conns := tlsServer(t)
	caFile := writeCA(t, srv)
	// The test certificate covers 127.0.0.1, not the name localhost.
	byName := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	cases := []struct {
		name     string
		opts     moodle.Options
		wantErr  bool
		wantConn int32
		wantText string
	}{
		{"verification on by default: unknown authority", moodle.Options{URL: srv.URL}, true, 1, "Set moodle.ca_file"},
		{"ca_file trusts the site", moodle.Options{URL: srv.URL, CAFile: caFile}, false, 1, ""},
		{"insecure_skip_verify", moodle.Options{URL: srv.URL, InsecureSkipVerify: true}, false, 1, ""},
		{"ca_file, host name not in the certificate", moodle.Options{URL: byName, CAFile: caFile}, true, 1, "Set moodle.url"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conns.Store(0)
			o := tc.opts
			o.Token, o.Retries = secret, 3
			c, err := moodle.New(o)
			if err != nil {
				t.Fatal(err)
			}
			si, err := c.SiteInfo(context.Background())
			if got := conns.Load(); got != tc.wantConn {
				t.Errorf("%d connections, want %d (a TLS failure must not be retried)", got, tc.wantConn)
			}
			if !tc.wantErr {
				if err != nil || si.SiteName != "TLS site" {
					t.Fatalf("SiteInfo = %+v, %v", si, err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error from a site whose certificate is not trusted")
			}
			if !moodle.IsFatal(err) || moodle.IsTransient(err) || moodle.ErrorCode(err) != moodle.CodeTLS {
				t.Errorf("err = %v: IsFatal %v, IsTransient %v, code %q; want fatal, permanent, %q",
					err, moodle.IsFatal(err), moodle.IsTransient(err), moodle.ErrorCode(err), moodle.CodeTLS)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("error does not say %q: %v", tc.wantText, err)
			}
			var ua x509.UnknownAuthorityError
			var hn x509.HostnameError
			if !errors.As(err, &ua) && !errors.As(err, &hn) {
				t.Errorf("error does not wrap the x509 cause: %#v", err)
			}
		})
	}

	t.Run("ca_file errors", func(t *testing.T) {
		empty := filepath.Join(t.TempDir(), "empty.pem")
		if err := os.WriteFile(empty, []byte("not a certificate\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{empty, filepath.Join(t.TempDir(), "missing.pem")} {
			if _, err := moodle.New(moodle.Options{URL: srv.URL, Token: secret, CAFile: f}); err == nil || !strings.Contains(err.Error(), "ca_file") {
				t.Errorf("New with ca_file %s: %v", filepath.Base(f), err)
			}
		}
	})
}
