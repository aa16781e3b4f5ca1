package report

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// echoingAuth refuses every login and quotes, base64-encoded, what the client sent with the
// password, as some SMTP servers do in the reply that refuses it.
type echoingAuth struct {
	mech string
	step int
	user []byte
}

func (a *echoingAuth) Next(response []byte) ([]byte, bool, error) {
	std, url := base64.StdEncoding.EncodeToString, base64.RawURLEncoding.EncodeToString
	refuse := func(quote string) error {
		return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid: " + quote}
	}
	switch a.mech {
	case sasl.Plain:
		if response == nil {
			return []byte{}, false, nil // no initial response: ask for it
		}
		// Quote the payload as sent, and as it would be with the user as authorisation id.
		parts := strings.SplitN(string(response), "\x00", 3)
		if len(parts) != 3 {
			return nil, false, refuse(std(response))
		}
		withAuthzid := parts[1] + "\x00" + parts[1] + "\x00" + parts[2]
		return nil, false, refuse(std(response) + " (" + url([]byte(withAuthzid)) + ")")
	case sasl.Login:
		a.step++
		switch a.step {
		case 1:
			return []byte("Username:"), false, nil
		case 2:
			a.user = response
			return []byte("Password:"), false, nil
		}
		return nil, false, refuse(std(a.user) + " " + std(response) + " " + url(response))
	}
	return nil, false, errors.New("unexpected mechanism")
}

type echoingSession struct{ mech string }

func (s *echoingSession) AuthMechanisms() []string { return []string{s.mech} }
func (s *echoingSession) Auth(mech string) (sasl.Server, error) {
	return &echoingAuth{mech: mech}, nil
}
func (s *echoingSession) Mail(string, *smtp.MailOptions) error { return smtp.ErrAuthRequired }
func (s *echoingSession) Rcpt(string, *smtp.RcptOptions) error { return smtp.ErrAuthRequired }
func (s *echoingSession) Data(io.Reader) error                 { return smtp.ErrAuthRequired }
func (s *echoingSession) Reset()                               {}
func (s *echoingSession) Logout() error                        { return nil }

// startEchoingSMTP starts, on a loopback port, an SMTP server that offers only mech and
// refuses every login with a reply quoting the credentials.
func startEchoingSMTP(t *testing.T, mech string) int {
	t.Helper()
	s := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &echoingSession{mech: mech}, nil
	}))
	s.Domain = "localhost"
	s.AllowInsecureAuth = true
	s.ReadTimeout = 10 * time.Second
	s.WriteTimeout = 10 * time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { _ = s.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// captureStderr runs fn with the process's standard error going to a pipe and returns what
// was written there.
func captureStderr(t *testing.T, fn func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = w
	read := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		read <- string(b)
	}()
	defer func() {
		os.Stderr = saved
	}()
	fn()
	os.Stderr = saved
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return <-read
}

// checkNoPassword fails the test for every form of the test password, or of the AUTH payloads
// that carry it, in text.
func checkNoPassword(t *testing.T, what, text string) {
	t.Helper()
	if l := leaks(text, testPassword); len(l) > 0 {
		t.Errorf("%s holds the SMTP password: %v\n%s", what, l, text)
	}
}

// checkKeptFileHasNoPassword reads a kept .eml as stored and as a mail client decodes it.
func checkKeptFileHasNoPassword(t *testing.T, path string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	checkNoPassword(t, "the kept .eml", string(raw))
	_, parts := parseMessage(t, raw)
	for _, p := range parts {
		checkNoPassword(t, "the "+p.contentType+" part of the kept .eml", string(p.body))
	}
}

// TestRefusedLoginEchoNeverLeaksThePassword has the SMTP server refuse the login with a reply
// that quotes the base64 AUTH payload (PLAIN) or password (LOGIN). Neither the error, nor the
// .eml kept instead, nor a report carrying the error, nor standard error holds the password
// in any form.
func TestRefusedLoginEchoNeverLeaksThePassword(t *testing.T) {
	for _, mech := range []string{sasl.Plain, sasl.Login} {
		t.Run(mech, func(t *testing.T) {
			m := testMailer(t, startEchoingSMTP(t, mech))
			var (
				d   Delivery
				err error
			)
			stderr := captureStderr(t, func() { d, err = m.Send(context.Background(), fewReport()) })
			if err != nil {
				t.Fatalf("Send: %v (the report could have been kept)", err)
			}
			if d.Sent || d.Err == nil || d.Path == "" {
				t.Fatalf("Delivery = %+v, want kept on disk with the reason", d)
			}

			checkNoPassword(t, "Delivery.Err", d.Err.Error())
			checkKeptFileHasNoPassword(t, d.Path)
			checkNoPassword(t, "standard error", stderr)
			if strings.Contains(stderr, "AUTH") {
				t.Errorf("the SMTP exchange was logged to standard error:\n%s", stderr)
			}
			if !strings.Contains(d.Err.Error(), "535") || !strings.Contains(d.Err.Error(), Redacted) {
				t.Errorf("Delivery.Err = %q, want the server's refusal with the quote redacted", d.Err)
			}
			// The server did quote the credentials: the error under the redaction holds them.
			var red *redactedError
			if !errors.As(d.Err, &red) {
				t.Fatalf("Delivery.Err %q was not redacted", d.Err)
			}
			if len(leaks(red.err.Error(), testPassword)) == 0 {
				t.Fatalf("the server's reply did not quote the password, so this test proves nothing: %v", red.err)
			}

			// A report that carries the refusal, as the caller logs and reports it: once as
			// scrubbed, once (a careless caller) as the raw text of the unwrapped error.
			for _, fatal := range []string{d.Err.Error(), red.err.Error()} {
				r := fewReport()
				r.Fatal = "the last report could not be sent: " + fatal
				rendered, err := Render(r, RenderOptions{Secrets: m.secrets()})
				if err != nil {
					t.Fatal(err)
				}
				checkNoPassword(t, "the rendered text", rendered.Text)
				checkNoPassword(t, "the rendered HTML", rendered.HTML)
				d2, err := m.Send(context.Background(), r)
				if err != nil || d2.Path == "" {
					t.Fatalf("second Send = %+v, %v", d2, err)
				}
				checkNoPassword(t, "the second Delivery.Err", d2.Err.Error())
				checkKeptFileHasNoPassword(t, d2.Path)
			}
		})
	}
}

// TestMailerSecretsCoverShortPasswords: a password shorter than Scrub's minimum is still
// removed inside the base64 AUTH PLAIN payload, which the mailer knows with the user name.
func TestMailerSecretsCoverShortPasswords(t *testing.T) {
	m := &Mailer{SMTP: SMTPConfig{Username: testUser, Password: "pw1"}}
	for _, payload := range []string{"\x00" + testUser + "\x00pw1", testUser + "\x00" + testUser + "\x00pw1"} {
		for _, e := range encodings {
			in := "535 5.7.8 refused " + e.enc.EncodeToString([]byte(payload))
			if got := m.redact(errors.New(in)).Error(); got != "535 5.7.8 refused "+Redacted {
				t.Errorf("redact(%q) = %q", in, got)
			}
		}
	}
}
