package report

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	mail "github.com/wneessen/go-mail"
	maillog "github.com/wneessen/go-mail/log"
)

// TLS modes for SMTPConfig.TLS.
const (
	// TLSStartTLS connects in plain text and requires STARTTLS before anything else is sent
	// (submission, usually port 587). It is the default.
	TLSStartTLS = "starttls"
	// TLSImplicit speaks TLS from the first byte (SMTPS, usually port 465).
	TLSImplicit = "tls"
	// TLSNone never encrypts (a relay on the same host, usually port 25). Passwords are then
	// only sent to a server on localhost.
	TLSNone = "none"
)

// DefaultSMTPTimeout bounds connecting to and talking with the SMTP server when
// SMTPConfig.Timeout is not set.
const DefaultSMTPTimeout = 30 * time.Second

// SMTPConfig says how to reach the mail server and whom to write to.
type SMTPConfig struct {
	// Host is the SMTP server. When empty, reports are only written to disk.
	Host string
	// Port defaults to 587 for starttls, 465 for tls and 25 for none.
	Port     int
	Username string
	Password string
	From     string
	To       []string
	// TLS is "starttls" (the default), "tls" or "none".
	TLS     string
	Timeout time.Duration
	// InsecureSkipVerify accepts any server certificate. For testing only.
	InsecureSkipVerify bool
	// CAFile is a PEM file of certificate authorities to trust instead of the system's.
	CAFile string
}

// Mailer sends reports by email and keeps a copy on disk when it cannot.
type Mailer struct {
	SMTP SMTPConfig
	// Dir is where .eml copies are kept when sending fails or SMTP.Host is empty; the current
	// directory when empty. It is created if need be.
	Dir    string
	Render RenderOptions
	// Now gives the message date; time.Now when nil.
	Now func() time.Time
}

// Delivery tells what became of a report.
type Delivery struct {
	// Sent is true when the SMTP server accepted the message.
	Sent bool
	// Path is the .eml file the message was kept in, when it was not sent.
	Path string
	// Err is why sending failed, when the message was kept on disk instead. It is nil when
	// SMTP is not configured.
	Err error
}

// Send renders r and emails it. When SMTP.Host is empty it only writes the message as an .eml
// file into Dir; when sending fails, it writes the file and returns Delivery{Sent: false, Path,
// Err}. It returns an error only when it could neither send nor write the file. Neither the
// message nor any error contains the SMTP password, in any encoding: an SMTP server may quote
// the AUTH payload, base64 of the user name and password, in the reply it refuses it with.
func (m *Mailer) Send(ctx context.Context, r Report) (Delivery, error) {
	d, err := m.deliver(ctx, r)
	// The one place errors leave the mailer: whatever library made them, they are scrubbed.
	d.Err = m.redact(d.Err)
	return d, m.redact(err)
}

func (m *Mailer) deliver(ctx context.Context, r Report) (Delivery, error) {
	opt := m.Render
	opt.Secrets = m.secrets()
	rendered, err := Render(r, opt)
	if err != nil {
		return Delivery{}, err
	}
	msg, addrErr, err := m.message(rendered, r)
	if err != nil {
		return Delivery{}, err
	}

	if m.SMTP.Host == "" {
		path, err := m.keep(msg, r)
		if err != nil {
			return Delivery{}, fmt.Errorf("SMTP is not configured and the report could not be kept: %w", err)
		}
		return Delivery{Path: path}, nil
	}

	sendErr := addrErr
	if sendErr == nil {
		sendErr = m.send(ctx, msg)
	}
	if sendErr == nil {
		return Delivery{Sent: true}, nil
	}
	path, err := m.keep(msg, r)
	if err != nil {
		return Delivery{Err: sendErr}, errors.Join(sendErr, err)
	}
	return Delivery{Path: path, Err: sendErr}, nil
}

// message builds the MIME message: text and HTML alternatives, and the CSV when there is one.
// A sender or recipient that does not parse is left out and returned as addrErr, so that the
// report is still kept on disk and the caller learns what to correct.
func (m *Mailer) message(rd Rendered, r Report) (msg *mail.Msg, addrErr, err error) {
	msg = mail.NewMsg(mail.WithNoDefaultUserAgent())
	var addrErrs []error
	if m.SMTP.From != "" {
		if err := msg.From(m.SMTP.From); err != nil {
			addrErrs = append(addrErrs, fmt.Errorf("report sender %q: %w", m.SMTP.From, err))
		}
	}
	for _, to := range m.SMTP.To {
		if err := msg.AddTo(to); err != nil {
			addrErrs = append(addrErrs, fmt.Errorf("report recipient %q: %w", to, err))
		}
	}
	msg.Subject(rd.Subject)
	msg.SetDateWithValue(m.now())
	msg.SetMessageID()
	msg.SetUserAgent("cmissync")
	// RFC 3834: keeps vacation responders and ticket systems from answering a robot.
	msg.SetGenHeader(mail.Header("Auto-Submitted"), "auto-generated")
	msg.SetGenHeader(mail.HeaderXAutoResponseSuppress, "All")
	if r.RunID != "" {
		msg.SetGenHeader(mail.Header("X-Cmissync-Run"), oneLine(Scrub(r.RunID, m.secrets()...)))
	}
	if r.Step != "" {
		msg.SetGenHeader(mail.Header("X-Cmissync-Step"), oneLine(Scrub(r.Step, m.secrets()...)))
	}
	msg.SetBodyString(mail.TypeTextPlain, rd.Text)
	msg.AddAlternativeString(mail.TypeTextHTML, rd.HTML)
	if rd.CSV != nil {
		if err := msg.AttachReader(rd.CSVName, bytes.NewReader(rd.CSV),
			mail.WithFileContentType(mail.ContentType("text/csv; charset=utf-8")),
			mail.WithFileDescription("All failures of this step")); err != nil {
			return nil, nil, fmt.Errorf("attach %s: %w", rd.CSVName, err)
		}
	}
	return msg, errors.Join(addrErrs...), nil
}

// secrets are the values to keep out of the message and the errors: the caller's, the SMTP
// password, and the SMTP AUTH PLAIN payloads that carry it next to the user name (with and
// without an authorisation identity), which Scrub then also finds base64-encoded when the
// password alone is too short for it to look for.
func (m *Mailer) secrets() []string {
	out := append(append([]string(nil), m.Render.Secrets...), m.SMTP.Password)
	if u, p := m.SMTP.Username, m.SMTP.Password; u != "" && p != "" {
		out = append(out, "\x00"+u+"\x00"+p, u+"\x00"+u+"\x00"+p)
	}
	return out
}

func (m *Mailer) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *Mailer) send(ctx context.Context, msg *mail.Msg) error {
	c := m.SMTP
	if c.From == "" {
		return errors.New("no sender (From) configured for reports")
	}
	if len(c.To) == 0 {
		return errors.New("no recipients (To) configured for reports")
	}
	opts, port, err := c.clientOptions()
	if err != nil {
		return err
	}
	client, err := mail.NewClient(c.Host, opts...)
	if err != nil {
		return fmt.Errorf("SMTP client for %s: %w", c.Host, err)
	}
	// The protocol log holds the AUTH exchange; it stays off, whatever a default becomes.
	client.SetDebugLog(false)
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		return fmt.Errorf("send report via %s: %w", netAddr(c.Host, port), err)
	}
	return nil
}

func netAddr(host string, port int) string {
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.Itoa(port)
}

// tlsMode maps SMTPConfig.TLS to go-mail's settings: the STARTTLS policy, whether to speak
// TLS from the start, and the port to use when none is configured.
func tlsMode(mode string) (policy mail.TLSPolicy, implicit bool, port int, err error) {
	switch strings.ToLower(strings.TrimSpace(mode)) {
	case "", TLSStartTLS:
		return mail.TLSMandatory, false, 587, nil
	case TLSImplicit:
		return mail.TLSMandatory, true, 465, nil
	case TLSNone:
		return mail.NoTLS, false, 25, nil
	default:
		return 0, false, 0, fmt.Errorf("unknown SMTP TLS mode %q (want %q, %q or %q)",
			mode, TLSStartTLS, TLSImplicit, TLSNone)
	}
}

func (c SMTPConfig) clientOptions() ([]mail.Option, int, error) {
	policy, implicit, port, err := tlsMode(c.TLS)
	if err != nil {
		return nil, 0, err
	}
	if c.Port != 0 {
		port = c.Port
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultSMTPTimeout
	}
	tlsConf := &tls.Config{
		ServerName:         c.Host,
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: c.InsecureSkipVerify,
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, 0, fmt.Errorf("read SMTP CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, 0, fmt.Errorf("SMTP CA file %s holds no PEM certificates", c.CAFile)
		}
		tlsConf.RootCAs = pool
	}
	opts := []mail.Option{
		mail.WithPort(port),
		mail.WithTimeout(timeout),
		mail.WithTLSPolicy(policy),
		mail.WithTLSConfig(tlsConf),
		mail.WithHELO(helo()),
		// go-mail writes its protocol log, AUTH included, to standard error when debug logging
		// is on; with this logger it goes nowhere even then.
		mail.WithLogger(discardSMTPLog{}),
	}
	if implicit {
		opts = append(opts, mail.WithSSL())
	}
	if c.Username != "" {
		// PLAIN and LOGIN refuse to send the password over an unencrypted connection to
		// anything but localhost, which is the behaviour we want for TLS "none".
		opts = append(opts,
			mail.WithOpportunisticSMTPAuth(mail.SMTPAuthSCRAMSHA256, mail.SMTPAuthSCRAMSHA1,
				mail.SMTPAuthPlain, mail.SMTPAuthLogin),
			mail.WithUsername(c.Username),
			mail.WithPassword(c.Password))
	}
	return opts, port, nil
}

func helo() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}

// keep writes msg into Dir as <runid>-<step>.eml, adding -2, -3, ... rather than overwriting
// an earlier report, and returns the path.
func (m *Mailer) keep(msg *mail.Msg, r Report) (string, error) {
	var buf bytes.Buffer
	if _, err := msg.WriteTo(&buf); err != nil {
		return "", fmt.Errorf("render report message: %w", err)
	}
	dir := m.Dir
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", fmt.Errorf("create report directory: %w", err)
	}
	step := r.Step
	if step == "" {
		step = "run"
	}
	runID := r.RunID
	if runID == "" {
		runID = m.now().UTC().Format("20060102-150405")
	}
	base := safeName(Scrub(runID, m.secrets()...) + "-" + Scrub(step, m.secrets()...))
	for i := 1; i <= 1000; i++ {
		name := base + ".eml"
		if i > 1 {
			name = base + "-" + strconv.Itoa(i) + ".eml"
		}
		path := filepath.Join(dir, name)
		// Reports name students and staff, so they are not world-readable.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("keep report: %w", err)
		}
		_, werr := f.Write(buf.Bytes())
		cerr := f.Close()
		if err := errors.Join(werr, cerr); err != nil {
			_ = os.Remove(path)
			return "", fmt.Errorf("keep report in %s: %w", path, err)
		}
		return path, nil
	}
	return "", fmt.Errorf("keep report: too many reports named %s*.eml in %s", base, dir)
}

// redact scrubs the secrets, the SMTP password and AUTH payloads in any encoding, from an
// error's text, whatever library produced it. The original stays reachable through Unwrap for
// errors.Is and errors.As.
func (m *Mailer) redact(err error) error {
	if err == nil {
		return nil
	}
	text := Scrub(err.Error(), m.secrets()...)
	if text == err.Error() {
		return err
	}
	return &redactedError{err: err, text: text}
}

type redactedError struct {
	err  error
	text string
}

func (e *redactedError) Error() string { return e.text }

func (e *redactedError) Unwrap() error { return e.err }

// discardSMTPLog is a go-mail logger that writes nothing.
type discardSMTPLog struct{}

func (discardSMTPLog) Debugf(maillog.Log) {}
func (discardSMTPLog) Infof(maillog.Log)  {}
func (discardSMTPLog) Warnf(maillog.Log)  {}
func (discardSMTPLog) Errorf(maillog.Log) {}
