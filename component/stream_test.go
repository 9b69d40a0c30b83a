package component_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/internal/xmpp"
	"github.com/pubpresence/pubpresence/internal/xmpptest"
)

func TestServerEndsStream(t *testing.T) {
	tests := []struct {
		name  string
		end   func(sc *xmpptest.Conn)
		check func(t *testing.T, err error)
	}{
		{
			name: "stream error",
			end: func(sc *xmpptest.Conn) {
				_ = sc.Write(xmpptest.StreamError("conflict", "x"))
			},
			check: func(t *testing.T, err error) {
				var se *component.StreamError
				if !errors.As(err, &se) || !errors.Is(err, xmpp.ErrStreamConflict) || se.Text != "x" {
					t.Errorf("Err() = %v (%T), want *StreamError{conflict, x}", err, err)
				}
			},
		},
		{
			name: "stream error, close and EOF (Prosody)",
			end: func(sc *xmpptest.Conn) {
				_ = sc.Write(xmpptest.StreamError("invalid-from", "Component tried to send from address &lt;alice@localhost&gt;") + "</stream:stream>")
				sc.Close()
			},
			check: func(t *testing.T, err error) {
				var se *component.StreamError
				if !errors.As(err, &se) || !errors.Is(err, xmpp.ErrStreamInvalidFrom) ||
					se.Text != "Component tried to send from address <alice@localhost>" {
					t.Errorf("Err() = %v (%T), want *StreamError{invalid-from, …}", err, err)
				}
			},
		},
		{
			name: "EOF without </stream:stream> (Prosody on SIGTERM)",
			end: func(sc *xmpptest.Conn) {
				_ = sc.Write("<presence type='unavailable' from='bob@localhost/rs' to='" + compName +
					"'><status>Disconnected: Received SIGTERM</status></presence>")
				sc.Close()
			},
			check: func(t *testing.T, err error) {
				msg := err.Error()
				if !strings.Contains(msg, "closed") || strings.Contains(msg, "syntax error") {
					t.Errorf("Err() = %q, want a readable message about the server closing the connection", msg)
				}
			},
		},
		{
			name: "EOF inside a stanza",
			end: func(sc *xmpptest.Conn) {
				_ = sc.Write("<presence from='bob@localhost/r' to='" + compName + "'><sta")
				sc.Close()
			},
			check: func(t *testing.T, err error) {},
		},
		{
			name: "</stream:stream>",
			end: func(sc *xmpptest.Conn) {
				_ = sc.Write("</stream:stream>")
			},
			check: func(t *testing.T, err error) {
				if errors.Is(err, component.ErrClosed) {
					t.Errorf("Err() = %v: a close by the server is not our own Close", err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFakeServer(t)
			c, sc := dial(t, srv)
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			// Two callers wait for answers that never come.
			call, err := c.Start(ctx, "get", "pubsub.localhost", nil)
			if err != nil {
				t.Fatal(err)
			}
			res := goIQ(ctx, c, "set", "localhost", "<q xmlns='urn:test'/>")
			sc.Next(t)
			sc.Next(t)

			tt.end(sc)
			err = waitDone(t, c)
			tt.check(t, err)
			if _, werr := call.Wait(ctx); !errors.Is(werr, component.ErrClosed) {
				t.Errorf("pending Wait = %v, want an error wrapping ErrClosed", werr)
			}
			if r := waitIQ(t, res); !errors.Is(r.err, component.ErrClosed) {
				t.Errorf("pending IQ = %v, want an error wrapping ErrClosed", r.err)
			}
		})
	}
}

func TestClose(t *testing.T) {
	srv := newFakeServer(t)
	c, sc := dial(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	res := goIQ(ctx, c, "get", "pubsub.localhost", "")
	sc.Next(t)

	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close() = %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Close did not return")
	}
	if !sc.GotStreamEnd() {
		t.Error("the server did not get </stream:stream>")
	}
	if err := waitDone(t, c); !errors.Is(err, component.ErrClosed) {
		t.Errorf("Err() after Close = %v, want ErrClosed", err)
	}
	if r := waitIQ(t, res); !errors.Is(r.err, component.ErrClosed) {
		t.Errorf("pending IQ = %v, want an error wrapping ErrClosed", r.err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close() = %v", err)
	}
}

// Close must not hang on a server that never answers </stream:stream>.
func TestCloseSilentServer(t *testing.T) {
	srv := newFakeServer(t)
	c, sc := dial(t, srv)
	sc.Silence()
	closed := make(chan struct{})
	go func() { _ = c.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(wait):
		t.Fatal("Close did not return")
	}
	eventually(t, "</stream:stream> at the server", sc.GotStreamEnd)
	if err := waitDone(t, c); !errors.Is(err, component.ErrClosed) {
		t.Errorf("Err() = %v, want ErrClosed", err)
	}
	select {
	case <-sc.Gone():
	case <-time.After(wait):
		t.Error("the socket is still open after Close")
	}
}

// A session that stopped reading Inbound must not make Close hang: the
// reader is stuck queueing, and Close ends it anyway.
func TestCloseWithInboundFull(t *testing.T) {
	srv := newFakeServer(t)
	c, sc := dial(t, srv, func(cfg *component.Config) { cfg.InboundQueue = 2 })
	for i := 0; i < 5; i++ {
		_ = sc.Write(fmt.Sprintf("<presence from='u%d@localhost/r' to='%s'/>", i, compName))
	}
	eventually(t, "the reader to fill Inbound", func() bool { return c.Stats().Received >= 3 })
	closed := make(chan struct{})
	go func() { _ = c.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(wait):
		t.Fatal("Close did not return")
	}
	if err := waitDone(t, c); !errors.Is(err, component.ErrClosed) {
		t.Errorf("Err() = %v, want ErrClosed", err)
	}
}

// Once the stream has ended, every request fails at once with ErrClosed: it
// is neither queued for a writer that is gone nor left waiting for its ctx.
func TestUseAfterEnd(t *testing.T) {
	for _, tt := range []struct {
		name string
		end  func(c *component.Conn, sc *xmpptest.Conn)
	}{
		{"server EOF", func(_ *component.Conn, sc *xmpptest.Conn) { sc.Close() }},
		{"Close", func(c *component.Conn, _ *xmpptest.Conn) { _ = c.Close() }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFakeServer(t)
			c, sc := dial(t, srv)
			tt.end(c, sc)
			waitDone(t, c)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			for i := 0; i < 30; i++ {
				if _, err := c.IQ(ctx, "get", "localhost", nil); !errors.Is(err, component.ErrClosed) {
					t.Fatalf("IQ %d after the end = %v, want an error wrapping ErrClosed", i, err)
				}
				if err := c.SendPresence(ctx, "bob@localhost", "", "", ""); !errors.Is(err, component.ErrClosed) {
					t.Fatalf("SendPresence %d after the end = %v, want an error wrapping ErrClosed", i, err)
				}
				if err := c.Send(ctx, []byte("<message to='bob@localhost'/>")); !errors.Is(err, component.ErrClosed) {
					t.Fatalf("Send %d after the end = %v, want an error wrapping ErrClosed", i, err)
				}
			}
		})
	}
}

func keepaliveConfig(cfg *component.Config) {
	cfg.KeepaliveInterval = 50 * time.Millisecond
	cfg.KeepaliveTimeout = 100 * time.Millisecond
	cfg.PingTo = "localhost"
}

// pings returns the pings the server has read.
func pings(sc *xmpptest.Conn) []*xmpptest.Element {
	var p []*xmpptest.Element
	for _, e := range sc.Log() {
		if e.IsPing() {
			p = append(p, e)
		}
	}
	return p
}

func TestKeepalive(t *testing.T) {
	for _, tt := range []struct {
		name   string
		answer string
	}{
		{"result", ""},
		{"error answer counts as alive", "<error type='cancel'><service-unavailable xmlns='" + xmpp.NSStanzas + "'/></error>"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newFakeServerWith(t, xmpptest.Config{Handler: func(sc *xmpptest.Conn, e *xmpptest.Element) bool {
				if !e.IsPing() {
					return false
				}
				typ := "result"
				if tt.answer != "" {
					typ = "error"
				}
				_ = sc.Write(xmpptest.IQAnswer(e, typ, tt.answer))
				return true
			}})
			c, sc := dial(t, srv, keepaliveConfig)
			// Several intervals, and more than KeepaliveTimeout in all.
			eventually(t, "6 pings", func() bool { return len(pings(sc)) >= 6 })
			if err := c.Err(); err != nil {
				t.Fatalf("stream ended although pings were answered: %v", err)
			}
			for _, p := range pings(sc) {
				if p.Attr("type") != "get" || p.Attr("to") != "localhost" || p.Attr("from") != compName ||
					string(p.Inner) != "<ping xmlns='urn:xmpp:ping'/>" {
					t.Errorf("ping = %v %q", p.Attrs(), p.Inner)
				}
			}
			if s := c.Stats(); s.UnknownResults != 0 {
				t.Errorf("Stats = %+v: ping answers were not matched", s)
			}
		})
	}
}

func TestKeepaliveSilentServer(t *testing.T) {
	t.Parallel()
	srv := newFakeServerWith(t, xmpptest.Config{Handler: xmpptest.AnswerPings})
	c, sc := dial(t, srv, keepaliveConfig)
	eventually(t, "2 pings", func() bool { return len(pings(sc)) >= 2 })
	if err := c.Err(); err != nil {
		t.Fatalf("stream ended while pings were answered: %v", err)
	}
	sc.Silence() // TCP stays open, nothing is answered
	err := waitDone(t, c)
	if !strings.Contains(err.Error(), "keepalive") {
		t.Errorf("Err() = %q, want it to mention the keepalive", err)
	}
	select {
	case <-sc.Gone():
	case <-time.After(wait):
		t.Error("the socket is still open after the keepalive failed")
	}
}

// A server too busy to answer pings in time is alive as long as it sends
// anything; once it sends nothing for KeepaliveTimeout after a ping, the
// stream ends.
func TestKeepaliveBusyServer(t *testing.T) {
	t.Parallel()
	srv := newFakeServer(t) // never answers pings
	c, sc := dial(t, srv, keepaliveConfig)
	stop := make(chan struct{})
	flooding := make(chan struct{})
	go func() {
		defer close(flooding)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			_ = sc.Write(fmt.Sprintf("<presence from='u%d@localhost/r' to='%s'/>", i, compName))
		}
	}()
	go func() {
		for {
			select {
			case <-c.Inbound():
			case <-c.Done():
				return
			}
		}
	}()
	// Several unanswered pings, each older than KeepaliveTimeout.
	eventually(t, "4 unanswered pings", func() bool { return len(pings(sc)) >= 4 })
	if err := c.Err(); err != nil {
		close(stop)
		t.Fatalf("stream ended while the server was sending: %v", err)
	}
	close(stop)
	<-flooding
	err := waitDone(t, c)
	if !strings.Contains(err.Error(), "keepalive") {
		t.Errorf("Err() = %q, want it to mention the keepalive", err)
	}
}

// One element whose bytes take longer than KeepaliveTimeout to come (the
// actual node's items at a million connections are some 250 MB) keeps the
// stream alive while they come.
func TestKeepaliveLargeElement(t *testing.T) {
	t.Parallel()
	srv := newFakeServer(t) // never answers pings
	c, sc := dial(t, srv, keepaliveConfig)
	if err := sc.Write("<message from='localhost' to='" + compName + "'><body>"); err != nil {
		t.Fatal(err)
	}
	// Several unanswered pings, each older than KeepaliveTimeout, while
	// the element's text comes.
	for len(pings(sc)) < 4 {
		time.Sleep(10 * time.Millisecond)
		if err := sc.Write(strings.Repeat("x", 100)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Err(); err != nil {
		t.Fatalf("stream ended while an element was coming: %v", err)
	}
	if err := sc.Write("</body></message>"); err != nil {
		t.Fatal(err)
	}
	select {
	case st := <-c.Inbound():
		if st.Name != "message" || !strings.HasPrefix(string(st.Inner), "<body>xxx") {
			t.Errorf("got %s %q…", st.Name, st.Inner[:min(len(st.Inner), 20)])
		}
	case <-c.Done():
		t.Fatalf("stream ended: %v", c.Err())
	case <-time.After(wait):
		t.Fatal("the large element never came")
	}
}

func TestConcurrentUse(t *testing.T) {
	const workers, each = 16, 40
	var presences atomic.Int64
	srv := newFakeServerWith(t, xmpptest.Config{Handler: func(sc *xmpptest.Conn, e *xmpptest.Element) bool {
		switch {
		case e.IsIQRequest():
			_ = sc.Write(xmpptest.IQAnswer(e, "result", string(e.Inner))) // echo the payload
		case e.Is("presence"):
			presences.Add(1)
		default:
			return false
		}
		return true
	}})
	c, sc := dial(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	// The server also pings the component while all this goes on.
	stopPings := make(chan struct{})
	var pingWG sync.WaitGroup
	pingWG.Add(1)
	go func() {
		defer pingWG.Done()
		for i := 0; ; i++ {
			select {
			case <-stopPings:
				return
			case <-time.After(time.Millisecond):
			}
			_ = sc.Write(fmt.Sprintf("<iq type='get' id='s%d' from='localhost' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>", i, compName))
		}
	}()

	var wg sync.WaitGroup
	errs := make(chan error, workers*each*2)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				payload := fmt.Sprintf("<q xmlns='urn:test' n='%d-%d'/>", w, i)
				got, err := c.IQ(ctx, "get", "pubsub.localhost", []byte(payload))
				if err != nil {
					errs <- fmt.Errorf("IQ %d-%d: %w", w, i, err)
				} else if string(got) != payload {
					errs <- fmt.Errorf("IQ %d-%d got %q", w, i, got)
				}
				if err := c.SendPresence(ctx, fmt.Sprintf("u%d@localhost", w), "", "", fmt.Sprint(i)); err != nil {
					errs <- fmt.Errorf("SendPresence %d-%d: %w", w, i, err)
				}
				_ = c.Stats()
				_ = c.Err()
			}
		}()
	}
	wg.Wait()
	close(stopPings)
	pingWG.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	eventually(t, "every presence at the server", func() bool { return presences.Load() == workers*each })
	if err := c.Err(); err != nil {
		t.Errorf("stream ended: %v", err)
	}
	if s := c.Stats(); s.UnknownResults != 0 {
		t.Errorf("Stats = %+v", s)
	}
}
