package report

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/cmissync/cmissync/load/report/reporttest"
)

const (
	testUser     = "cmissync-reports"
	testPassword = "smtp-Pa55word-never-shown"
)

// startSMTP starts the shared test SMTP server with the test login.
func startSMTP(t *testing.T) *reporttest.Server {
	t.Helper()
	return reporttest.StartSMTP(t, testUser, testPassword)
}

func testMailer(t *testing.T, port int) *Mailer {
	return &Mailer{
		SMTP: SMTPConfig{
			Host: "127.0.0.1", Port: port,
			Username: testUser, Password: testPassword,
			From: "cmissync <cmissync@example.ac.uk>",
			To:   []string{"moodle-support@example.ac.uk", "Timetabling Team <timetabling@example.ac.uk>"},
			TLS:  "none", Timeout: 5 * time.Second,
		},
		Dir: t.TempDir(),
		Now: func() time.Time { return fixedStart.Add(3 * time.Minute) },
	}
}

// part is one leaf of a parsed MIME message, decoded.
type part struct {
	contentType string
	filename    string
	body        []byte
}

// parseMessage reads a message the way a mail client would, decoding transfer encodings.
func parseMessage(t *testing.T, raw []byte) (*mail.Message, []part) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("message does not parse: %v", err)
	}
	var parts []part
	var walk func(ct string, h map[string][]string, body io.Reader)
	walk = func(ct string, h map[string][]string, body io.Reader) {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil {
			t.Fatalf("bad Content-Type %q: %v", ct, err)
		}
		if strings.HasPrefix(mt, "multipart/") {
			mr := multipart.NewReader(body, params["boundary"])
			for {
				p, err := mr.NextPart()
				if errors.Is(err, io.EOF) {
					return
				}
				if err != nil {
					t.Fatalf("multipart: %v", err)
				}
				walk(p.Header.Get("Content-Type"), p.Header, p)
			}
		}
		b, err := io.ReadAll(body)
		if err != nil {
			t.Fatal(err)
		}
		// multipart.Reader decodes quoted-printable itself; base64 is left to us.
		if strings.EqualFold(textproto(h, "Content-Transfer-Encoding"), "base64") {
			b, err = io.ReadAll(base64.NewDecoder(base64.StdEncoding, bytes.NewReader(b)))
			if err != nil {
				t.Fatalf("base64 part: %v", err)
			}
		}
		var filename string
		if cd := textproto(h, "Content-Disposition"); cd != "" {
			if _, p, err := mime.ParseMediaType(cd); err == nil {
				filename = p["filename"]
			}
		}
		parts = append(parts, part{contentType: mt, filename: filename, body: b})
	}
	walk(msg.Header.Get("Content-Type"), msg.Header, msg.Body)
	return msg, parts
}

func textproto(h map[string][]string, key string) string {
	for k, v := range h {
		if strings.EqualFold(k, key) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

func TestSendOverSMTP(t *testing.T) {
	tests := []struct {
		name    string
		report  Report
		wantCSV bool
	}{
		{"few failures", fewReport(), false},
		{"many failures", manyReport(), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startSMTP(t)
			m := testMailer(t, srv.Port)
			// The token must go whatever field it hides in.
			tt.report.Failures[0].Message = "debuginfo: wstoken=" + testToken
			tt.report.Fatal = "smtp password is " + testPassword

			d, err := m.Send(context.Background(), tt.report)
			if err != nil {
				t.Fatal(err)
			}
			if !d.Sent || d.Path != "" || d.Err != nil {
				t.Fatalf("Delivery = %+v, want sent and nothing kept on disk", d)
			}
			if files, _ := os.ReadDir(m.Dir); len(files) != 0 {
				t.Errorf("a sent report was also written to disk: %v", files)
			}

			msgs := srv.Messages()
			if len(msgs) != 1 {
				t.Fatalf("server received %d messages, want 1", len(msgs))
			}
			got := msgs[0]
			if !got.Authed {
				t.Error("message was accepted without authentication")
			}
			if got.From != "cmissync@example.ac.uk" {
				t.Errorf("envelope sender = %q", got.From)
			}
			if strings.Join(got.To, ",") != "moodle-support@example.ac.uk,timetabling@example.ac.uk" {
				t.Errorf("envelope recipients = %v", got.To)
			}

			for _, secret := range []string{testToken, testPassword} {
				if bytes.Contains(got.Data, []byte(secret)) {
					t.Errorf("raw message contains the secret %q", secret)
				}
			}

			msg, parts := parseMessage(t, got.Data)
			want, err := Render(tt.report, RenderOptions{Secrets: []string{testPassword}})
			if err != nil {
				t.Fatal(err)
			}
			subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
			if err != nil {
				t.Fatal(err)
			}
			if subject != want.Subject {
				t.Errorf("Subject = %q, want %q", subject, want.Subject)
			}
			from, err := msg.Header.AddressList("From")
			if err != nil || len(from) != 1 || from[0].Address != "cmissync@example.ac.uk" || from[0].Name != "cmissync" {
				t.Errorf("From = %v (%v)", from, err)
			}
			to, err := msg.Header.AddressList("To")
			if err != nil || len(to) != 2 || to[0].Address != "moodle-support@example.ac.uk" ||
				to[1].Address != "timetabling@example.ac.uk" || to[1].Name != "Timetabling Team" {
				t.Errorf("To = %v (%v)", to, err)
			}
			if d, err := msg.Header.Date(); err != nil || !d.Equal(fixedStart.Add(3*time.Minute)) {
				t.Errorf("Date = %v (%v), want the mailer's clock", d, err)
			}
			if msg.Header.Get("Auto-Submitted") != "auto-generated" {
				t.Error("Auto-Submitted header missing")
			}
			if msg.Header.Get("X-Cmissync-Run") != tt.report.RunID {
				t.Errorf("X-Cmissync-Run = %q", msg.Header.Get("X-Cmissync-Run"))
			}

			var text, html, csvPart *part
			for i := range parts {
				p := &parts[i]
				for _, secret := range []string{testToken, testPassword} {
					if bytes.Contains(p.body, []byte(secret)) {
						t.Errorf("decoded %s part contains the secret %q", p.contentType, secret)
					}
				}
				switch {
				case p.contentType == "text/plain":
					text = p
				case p.contentType == "text/html":
					html = p
				case p.contentType == "text/csv":
					csvPart = p
				}
			}
			// Mail travels with CRLF line ends; compare the text as a client shows it.
			lf := func(b []byte) string { return strings.ReplaceAll(string(b), "\r\n", "\n") }
			if text == nil || lf(text.body) != want.Text {
				t.Errorf("text part missing or not as rendered")
			}
			if html == nil || lf(html.body) != want.HTML {
				t.Errorf("HTML part missing or not as rendered")
			}
			if tt.wantCSV {
				if csvPart == nil {
					t.Fatal("CSV attachment missing")
				}
				if csvPart.filename != want.CSVName {
					t.Errorf("attachment name = %q, want %q", csvPart.filename, want.CSVName)
				}
				if !bytes.Equal(csvPart.body, want.CSV) {
					t.Error("CSV attachment differs from the rendered CSV")
				}
				if recs := readCSV(t, csvPart.body); len(recs) != len(tt.report.Failures)+1 {
					t.Errorf("CSV attachment has %d records, want %d", len(recs), len(tt.report.Failures)+1)
				}
			} else if csvPart != nil {
				t.Error("CSV attached although every failure fits inline")
			}
		})
	}
}

// closedPort returns a loopback port with nothing listening on it.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return port
}

func checkKept(t *testing.T, d Delivery, dir, wantName string) *mail.Message {
	t.Helper()
	if d.Sent || d.Path == "" {
		t.Fatalf("Delivery = %+v, want kept on disk", d)
	}
	if filepath.Dir(d.Path) != filepath.Clean(dir) || filepath.Base(d.Path) != wantName {
		t.Errorf("kept as %s, want %s in %s", d.Path, wantName, dir)
	}
	raw, err := os.ReadFile(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{testToken, testPassword} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("kept message contains the secret %q", secret)
		}
	}
	msg, parts := parseMessage(t, raw)
	if len(parts) < 2 {
		t.Errorf("kept message has %d parts, want text and HTML", len(parts))
	}
	return msg
}

func TestSendFallsBackToDisk(t *testing.T) {
	srv := startSMTP(t)
	tests := []struct {
		name  string
		setup func(m *Mailer)
		want  string // in the error
	}{
		{"closed port", func(m *Mailer) { m.SMTP.Port = closedPort(t) }, "connect"},
		{"wrong password", func(m *Mailer) { m.SMTP.Password = "wrong-" + testPassword }, "SMTP AUTH failed"},
		{"starttls required but not offered", func(m *Mailer) { m.SMTP.TLS = "starttls" }, "STARTTLS"},
		{"unknown TLS mode", func(m *Mailer) { m.SMTP.TLS = "ssl" }, "unknown SMTP TLS mode"},
		{"no recipients", func(m *Mailer) { m.SMTP.To = nil }, "no recipients"},
		{"bad recipient", func(m *Mailer) { m.SMTP.To = []string{"not an address"} }, "report recipient"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := testMailer(t, srv.Port)
			tt.setup(m)
			r := manyReport()
			r.Failures[3].Params = "wstoken=" + testToken

			d, err := m.Send(context.Background(), r)
			if err != nil {
				t.Fatalf("Send returned an error although the report could be kept: %v", err)
			}
			if d.Err == nil {
				t.Fatal("Delivery.Err is nil; the caller is not told why sending failed")
			}
			if !strings.Contains(d.Err.Error(), tt.want) {
				t.Errorf("Delivery.Err = %q, want it to mention %q", d.Err, tt.want)
			}
			for _, secret := range []string{testPassword, "wrong-" + testPassword} {
				if strings.Contains(d.Err.Error(), secret) {
					t.Errorf("Delivery.Err contains the SMTP password: %q", d.Err)
				}
			}
			msg := checkKept(t, d, m.Dir, "20261123-021500-cd34-load.eml")
			if !strings.Contains(msg.Header.Get("Subject"), "load finished with 50 failures") {
				t.Errorf("kept message has subject %q", msg.Header.Get("Subject"))
			}
		})
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("server accepted %d messages in failure cases", n)
	}
}

func TestSendWithoutSMTPKeepsFile(t *testing.T) {
	m := &Mailer{Dir: filepath.Join(t.TempDir(), "reports", "new"), Now: func() time.Time { return fixedStart }}
	r := fewReport()
	r.RunID = "../20261122/run id"
	for i, want := range []string{"_20261122_run_id-load.eml", "_20261122_run_id-load-2.eml"} {
		d, err := m.Send(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		if d.Err != nil {
			t.Errorf("send %d: Delivery.Err = %v, want nil when SMTP is not configured", i, d.Err)
		}
		checkKept(t, d, m.Dir, want)
		if fi, err := os.Stat(d.Path); err == nil && fi.Mode().Perm()&0o007 != 0 {
			t.Errorf("kept report is world-accessible: %v", fi.Mode())
		}
	}
}

func TestSendFailsWhenNothingWorks(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	m := testMailer(t, closedPort(t))
	m.Dir = blocker
	d, err := m.Send(context.Background(), fewReport())
	if err == nil {
		t.Fatalf("Send = %+v, nil; want an error when neither sending nor keeping works", d)
	}
	if d.Sent || d.Path != "" {
		t.Errorf("Delivery = %+v", d)
	}
	if strings.Contains(err.Error(), testPassword) {
		t.Errorf("error contains the SMTP password: %q", err)
	}
}

func TestTLSMode(t *testing.T) {
	tests := []struct {
		mode     string
		policy   gomail.TLSPolicy
		implicit bool
		port     int
	}{
		{"", gomail.TLSMandatory, false, 587},
		{"starttls", gomail.TLSMandatory, false, 587},
		{"STARTTLS", gomail.TLSMandatory, false, 587},
		{"tls", gomail.TLSMandatory, true, 465},
		{" TLS ", gomail.TLSMandatory, true, 465},
		{"none", gomail.NoTLS, false, 25},
	}
	for _, tt := range tests {
		policy, implicit, port, err := tlsMode(tt.mode)
		if err != nil {
			t.Errorf("tlsMode(%q): %v", tt.mode, err)
			continue
		}
		if policy != tt.policy || implicit != tt.implicit || port != tt.port {
			t.Errorf("tlsMode(%q) = %v, %v, %d; want %v, %v, %d",
				tt.mode, policy, implicit, port, tt.policy, tt.implicit, tt.port)
		}
	}
	for _, bad := range []string{"ssl", "opportunistic", "yes", "starttls-ish"} {
		if _, _, _, err := tlsMode(bad); err == nil {
			t.Errorf("tlsMode(%q) accepted an unknown mode", bad)
		}
	}

	_, port, err := SMTPConfig{Host: "mail.example.ac.uk", TLS: "tls", Port: 2465}.clientOptions()
	if err != nil || port != 2465 {
		t.Errorf("configured port not used: %d, %v", port, err)
	}
	if _, _, err := (SMTPConfig{Host: "h", CAFile: filepath.Join(t.TempDir(), "missing.pem")}).clientOptions(); err == nil {
		t.Error("a missing CA file was accepted")
	}
}

func TestRedactError(t *testing.T) {
	m := &Mailer{SMTP: SMTPConfig{Password: testPassword}}
	base := errors.New("535 auth failed for password " + testPassword)
	err := m.redact(base)
	if strings.Contains(err.Error(), testPassword) {
		t.Errorf("redacted error still contains the password: %q", err)
	}
	if !errors.Is(err, base) {
		t.Error("redaction hides the original error from errors.Is")
	}
	plain := errors.New("dial tcp: connection refused")
	if m.redact(plain) != plain {
		t.Error("errors without the password should pass through unchanged")
	}
}
