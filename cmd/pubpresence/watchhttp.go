package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/pubpresence/pubpresence/watch"
)

// xmppFlags are the flags of the XMPP login, which --http does not take.
var xmppFlags = []string{"jid", "password", "password-file", "server", "pubsub", "resource", "live", "actual", "status", "plain", "tls-name"}

// parseWatchHTTP checks the flags of watch --http; set holds the names of
// the flags given.
func parseWatchHTTP(o *watchOptions, set map[string]bool) error {
	for _, name := range xmppFlags {
		if set[name] {
			return usagef("--%s is for following the nodes over XMPP: it does not go with --http", name)
		}
	}
	base, err := watch.ParseHTTPBase(o.httpURL)
	if err != nil {
		return usagef("--http %q: %v", o.httpURL, err)
	}
	o.httpURL = base
	if o.tokenFile == "" {
		return usagef("--http needs --token-file (a file with the bearer token)")
	}
	o.token, err = watch.ReadToken(o.tokenFile)
	if err != nil {
		return usagef("--token-file: %v", err)
	}
	if o.caFile != "" {
		if u, _ := url.Parse(base); u.Scheme != "https" {
			return usagef("--ca verifies an https service: --http %s is plain http", base)
		}
		o.tls = &tls.Config{MinVersion: tls.VersionTLS12}
		if err := o.loadCA(); err != nil {
			return err
		}
	}
	return nil
}

// runWatchHTTP follows the service's event stream and prints it until ctx
// ends (nil), the state was printed with --once (nil) or something fails.
func runWatchHTTP(ctx context.Context, o *watchOptions, stdout, stderr io.Writer) error {
	f, err := watch.NewHTTPFollower(watch.HTTPConfig{URL: o.httpURL, Token: o.token, TLS: o.tls, Timeout: o.timeout})
	if err != nil {
		return err
	}
	p := newWatchPrinter(stdout, o.watchFormat(), o.once)
	f.OnRetry = func(err error, wait time.Duration) { p.retry(streamReason(err), wait) }
	first := true
	f.OnConnect = func(string) {
		if first {
			first = false
			fmt.Fprintf(stderr, "pubpresence watch: following %s with the token of %s\n", f.EventsURL(), o.tokenFile)
		}
		p.connected()
	}
	if err := follow(ctx, f, p); err != nil {
		return httpFollowError(o, err)
	}
	if p.err != nil {
		return fmt.Errorf("write: %w", p.err)
	}
	return nil
}

// streamReason says in a few words why the stream is down.
func streamReason(err error) string {
	var he *watch.HTTPError
	var ue *url.Error
	switch {
	case errors.As(err, &he):
		msg := fmt.Sprintf("%d %s", he.Code, http.StatusText(he.Code))
		if he.Message != "" {
			msg += ": " + he.Message
		}
		return msg
	case errors.As(err, &ue):
		err = ue.Err // the URL is known
	}
	return cell(err.Error())
}

// httpFollowError says why following the event stream stopped, naming the
// token file, never the token.
func httpFollowError(o *watchOptions, err error) error {
	var he *watch.HTTPError
	var oe *net.OpError
	switch {
	case errors.As(err, &he) && he.Code == http.StatusUnauthorized:
		return fmt.Errorf("%s refused the token of --token-file %s (401 Unauthorized): it must be a token of the service's http.tokens_file", o.httpURL, o.tokenFile)
	case errors.As(err, &he) && he.Code == http.StatusNotFound:
		return fmt.Errorf("GET %s: 404 Not Found: the HTTP API is off on this service (http.tokens_file), or %s is not the service's URL", he.URL, o.httpURL)
	case errors.As(err, &he):
		return err
	case errors.As(err, new(x509.UnknownAuthorityError)):
		return fmt.Errorf("connect to %s: the service's certificate is not signed by a known CA: give its CA with --ca (%v)", hostPort(o.httpURL), err)
	case errors.As(err, new(x509.HostnameError)):
		return fmt.Errorf("connect to %s: the service's certificate is not for this name (%v)", hostPort(o.httpURL), err)
	case errors.As(err, &oe) && oe.Op == "dial":
		return fmt.Errorf("connect to %s: %v", hostPort(o.httpURL), oe.Err)
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return fmt.Errorf("connect to %s: no answer within %s", hostPort(o.httpURL), o.timeout)
	}
	return fmt.Errorf("follow %s%s: %w", o.httpURL, watch.EventsPath, err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// hostPort returns the host:port of an http(s) URL.
func hostPort(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "https" {
		return net.JoinHostPort(u.Hostname(), "443")
	}
	return net.JoinHostPort(u.Hostname(), "80")
}
