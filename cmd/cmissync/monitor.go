package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Pings are small and must never hold a run up for long: a monitoring
// service that is down is not a reason to stall or fail the sync.
const (
	pingTimeout  = 10 * time.Second
	pingAttempts = 3
	pingWait     = time.Second
	// maxPingBody bounds the summary sent with the last ping
	// (healthchecks.io keeps the first 100 kB).
	maxPingBody = 10_000
)

// pinger pings a monitoring check by the healthchecks.io convention:
// URL/start when a run starts, URL when it ends with exit 0, URL/CODE when
// it ends with another exit code, so that a run that fails, or never comes,
// raises an alert.
type pinger struct {
	url    string
	client *http.Client
	// wait is the pause before a retry (doubled each time).
	wait time.Duration
}

func newPinger(pingURL string) *pinger {
	if pingURL == "" {
		return nil
	}
	return &pinger{url: strings.TrimRight(pingURL, "/"), client: &http.Client{Timeout: pingTimeout}, wait: pingWait}
}

// start says a run started.
func (p *pinger) start(ctx context.Context) error { return p.ping(ctx, "/start", "") }

// finish says a run ended with the exit code, with a summary of it.
func (p *pinger) finish(ctx context.Context, code int, summary string) error {
	suffix := ""
	if code != exitOK {
		suffix = "/" + strconv.Itoa(code)
	}
	if len(summary) > maxPingBody {
		summary = summary[:maxPingBody]
	}
	return p.ping(ctx, suffix, summary)
}

// ping requests the check's URL with suffix, retrying a few times. The
// run's context may be cancelled already (an interrupted run still says so),
// so the request has its own time limit instead. Errors never name the URL:
// it is the check's key.
func (p *pinger) ping(ctx context.Context, suffix, body string) error {
	if p == nil {
		return nil
	}
	ctx = context.WithoutCancel(ctx)
	wait := p.wait
	var last error
	for attempt := 1; attempt <= pingAttempts; attempt++ {
		if attempt > 1 {
			time.Sleep(wait)
			wait *= 2
		}
		if last = p.once(ctx, p.url+suffix, body); last == nil {
			return nil
		}
	}
	return fmt.Errorf("monitoring ping%s to %s failed after %d attempts: %w", suffix, p.host(), pingAttempts, last)
}

func (p *pinger) once(ctx context.Context, target, body string) error {
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(body))
	if err != nil {
		return errorWithoutURL(err)
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	req.Header.Set("User-Agent", "cmissync")
	resp, err := p.client.Do(req)
	if err != nil {
		return errorWithoutURL(err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}

// host names the monitoring service without the check's key.
func (p *pinger) host() string {
	if u, err := url.Parse(p.url); err == nil {
		return u.Host
	}
	return "the monitoring service"
}

// errorWithoutURL keeps the cause of a failed request without the URL
// that net/http puts in its errors.
func errorWithoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}
