package component_test

import (
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/internal/xmpptest"
)

// The stream logic is tested against internal/xmpptest's fake server,
// which answers the stream open and handshake like Prosody 0.12 on
// 127.0.0.1. After the handshake a test scripts what the server reads and
// writes through the xmpptest.Conn.

const (
	compName   = "pubpresence.localhost"
	compSecret = "s3cret"

	// wait bounds how long a test waits for something to happen. It guards
	// against hanging; it is not a speed assertion.
	wait = xmpptest.Wait
)

// newFakeServer starts a fake server that accepts compName with compSecret
// and serves its streams with no handler.
func newFakeServer(t testing.TB) *xmpptest.Server {
	t.Helper()
	return newFakeServerWith(t, xmpptest.Config{})
}

// newFakeServerWith is newFakeServer with cfg's mode, handler or script.
func newFakeServerWith(t testing.TB, cfg xmpptest.Config) *xmpptest.Server {
	t.Helper()
	cfg.Name, cfg.Secret = compName, compSecret
	return xmpptest.NewServer(t, cfg)
}

// config returns a Config that authenticates against srv.
func config(srv *xmpptest.Server) component.Config {
	return component.Config{Address: srv.Addr(), Name: compName, Secret: compSecret, DialTimeout: wait}
}

// eventually polls cond until it holds or wait has passed.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
