// Package reporttest runs a real SMTP server (go-smtp) on a loopback port
// for tests of the failure reports, so messages can be sent with the
// production mailer and read back as they arrived.
package reporttest

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Message is one message as the server received it.
type Message struct {
	From   string
	To     []string
	Authed bool
	Data   []byte
}

// Server is a running test SMTP server. It accepts AUTH PLAIN over plain
// text (allowed for tests only) for one user, and every recipient.
type Server struct {
	Port int

	user, password string
	mu             sync.Mutex
	msgs           []Message
}

// Messages returns the messages received so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

type session struct {
	srv *Server
	cur Message
}

func (se *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (se *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, username, password string) error {
		if username != se.srv.user || password != se.srv.password {
			return smtp.ErrAuthFailed
		}
		se.cur.Authed = true
		return nil
	}), nil
}

func (se *session) Mail(from string, _ *smtp.MailOptions) error {
	if !se.cur.Authed {
		return smtp.ErrAuthRequired
	}
	se.cur.From = from
	return nil
}

func (se *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	se.cur.To = append(se.cur.To, to)
	return nil
}

func (se *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	se.cur.Data = b
	se.srv.mu.Lock()
	se.srv.msgs = append(se.srv.msgs, se.cur)
	se.srv.mu.Unlock()
	se.cur = Message{Authed: se.cur.Authed}
	return nil
}

func (se *session) Reset()        { se.cur = Message{Authed: se.cur.Authed} }
func (se *session) Logout() error { return nil }

// StartSMTP starts a server on 127.0.0.1 for the test, accepting the given
// login, and stops it when the test ends.
func StartSMTP(t testing.TB, user, password string) *Server {
	t.Helper()
	srv := &Server{user: user, password: password}
	s := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &session{srv: srv}, nil
	}))
	s.Domain = "localhost"
	s.AllowInsecureAuth = true
	s.ReadTimeout = 10 * time.Second
	s.WriteTimeout = 10 * time.Second
	s.MaxMessageBytes = 10 << 20
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Port = l.Addr().(*net.TCPAddr).Port
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { _ = s.Close() })
	return srv
}
