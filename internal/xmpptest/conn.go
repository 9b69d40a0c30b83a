package xmpptest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Conn is the server's side of one connection.
type Conn struct {
	srv *Server
	tb  testing.TB
	r   reader

	// Out is what the serve loop writes, in one write, once its Handler
	// has seen every element of one read: a Handler that answers much
	// appends its answers here instead of writing each.
	Out []byte

	wmu sync.Mutex
	nc  net.Conn // a *tls.Conn after StartTLS

	hdr    []byte // the peer's stream header (its start tag)
	header string // ours
	id     string // our stream id

	h      atomic.Pointer[Handler]
	silent atomic.Bool
	gotEnd atomic.Bool   // the peer sent </stream:stream>
	gone   chan struct{} // the connection is closed and its goroutine done

	qmu   sync.Mutex
	queue []*Element    // read, not consumed by a Handler, not yet taken by Next
	ready chan struct{} // cap 1: queue grew
	log   []*Element    // every element the serve loop read, without Views
}

func newConn(s *Server, nc net.Conn) *Conn {
	c := &Conn{
		srv:   s,
		tb:    s.tb,
		nc:    nc,
		r:     reader{src: nc, buf: make([]byte, 0, 256<<10)},
		id:    randomID(),
		gone:  make(chan struct{}),
		ready: make(chan struct{}, 1),
	}
	if s.cfg.Handler != nil {
		c.SetHandler(s.cfg.Handler)
	}
	if s.cfg.Views {
		c.Out = make([]byte, 0, 256<<10)
	}
	return c
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// NetConn is the connection itself: a *tls.Conn after StartTLS.
func (c *Conn) NetConn() net.Conn {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.nc
}

// Header is the server's stream header, as the server sends it in answer
// to the peer's (ReadHeader sets it).
func (c *Conn) Header() string { return c.header }

// Write writes raw to the peer at once.
func (c *Conn) Write(raw string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := io.WriteString(c.nc, raw)
	return err
}

// WriteBytes is Write for bytes: it copies nothing.
func (c *Conn) WriteBytes(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.nc.Write(b)
	return err
}

// Send is Write for scripts: a failure is the test's (Errorf).
func (c *Conn) Send(raw string) {
	if err := c.Write(raw); err != nil {
		c.tb.Errorf("xmpptest: write: %v", err)
	}
}

// Close drops the TCP connection without closing the stream, as Prosody
// does on SIGTERM (over TLS it sends close_notify first).
func (c *Conn) Close() {
	_ = c.NetConn().Close()
}

// Gone is closed once the connection is closed and done with: its serve
// loop or script has returned.
func (c *Conn) Gone() <-chan struct{} { return c.gone }

// GotStreamEnd reports whether the peer sent </stream:stream>.
func (c *Conn) GotStreamEnd() bool { return c.gotEnd.Load() }

// ReadHeader reads the peer's stream header (after any XML declaration)
// and returns its attributes by local name. It also sets Header: our
// answer, in the stream's namespace.
func (c *Conn) ReadHeader() (map[string]string, error) {
	it, err := c.r.next()
	if err != nil {
		return nil, err
	}
	if it.kind != itemHeader {
		return nil, fmt.Errorf("xmpptest: %.40q where the stream header was expected", it.raw)
	}
	c.hdr = bytes.Clone(it.raw) // not reused: the Elements of the stream before keep theirs
	list, err := decodeHeader(c.hdr)
	if err != nil {
		return nil, err
	}
	attrs := map[string]string{}
	for _, a := range list {
		attrs[a.Name.Local] = a.Value
	}
	c.srv.addHeader(attrs)
	c.header = c.answerHeader(attrs)
	return attrs, nil
}

// Read reads the peer's next top-level element. It returns ErrStreamEnd
// when the peer closed the stream.
func (c *Conn) Read() (*Element, error) {
	it, err := c.r.next()
	if err != nil {
		return nil, err
	}
	var v Element
	if err := c.view(&v, it); err != nil {
		return nil, err
	}
	return v.clone()
}

// Recv is Read for scripts: a failure is the test's (Errorf), and gives an
// empty Element.
func (c *Conn) Recv() *Element {
	e, err := c.Read()
	if err != nil {
		c.tb.Errorf("xmpptest: read: %v", err)
		return &Element{}
	}
	return e
}

// ExpectNothing fails the test if the peer sends another element before
// it closes the connection.
func (c *Conn) ExpectNothing() {
	if e, err := c.Read(); err == nil {
		c.tb.Errorf("xmpptest: the peer sent %q, want it to hang up", e.Raw)
	}
}

// view makes v the element it, or says why it is none.
func (c *Conn) view(v *Element, it item) error {
	switch it.kind {
	case itemEnd:
		c.gotEnd.Store(true)
		return ErrStreamEnd
	case itemHeader:
		return fmt.Errorf("xmpptest: a stream header %.40q where an element was expected", it.raw)
	}
	inner := it.raw[it.tagLen:it.tagLen]
	if it.tagLen < len(it.raw) { // not <x/>: the element ends with its end tag
		inner = it.raw[it.tagLen:bytes.LastIndexByte(it.raw, '<')]
	}
	*v = Element{Raw: it.raw, Inner: inner, tag: it.raw[:it.tagLen], values: it.values, hdr: c.hdr}
	return nil
}

// SetHandler replaces the connection's Handler (nil removes it).
func (c *Conn) SetHandler(h Handler) {
	if h == nil {
		c.h.Store(nil)
		return
	}
	c.h.Store(&h)
}

// Silence makes the serve loop stop answering anything, </stream:stream>
// included, and queue nothing, while it keeps the connection open and
// reading.
func (c *Conn) Silence() { c.silent.Store(true) }

// Serve reads the stream until it ends and hands every element to the
// Handler; the others wait for Next. It answers </stream:stream> with its
// own and closes the connection. A component server serves each
// authenticated connection so, unless it has a Script.
func (c *Conn) Serve() error {
	views := c.srv.cfg.Views
	var v Element
	for {
		for {
			it, ok, err := c.r.buffered()
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			if err := c.view(&v, it); err != nil {
				if !errors.Is(err, ErrStreamEnd) {
					return err
				}
				if c.silent.Load() {
					continue // keep the socket open, answer nothing
				}
				c.flush()
				_ = c.Write("</stream:stream>")
				c.Close()
				return nil
			}
			e := &v
			if !views {
				if e, err = v.clone(); err != nil {
					return err
				}
				c.qmu.Lock()
				c.log = append(c.log, e)
				c.qmu.Unlock()
			}
			if c.silent.Load() {
				continue
			}
			if h := c.h.Load(); h != nil && (*h)(c, e) {
				continue
			}
			if views {
				if e, err = v.clone(); err != nil {
					return err
				}
			}
			c.qmu.Lock()
			c.queue = append(c.queue, e)
			c.qmu.Unlock()
			select {
			case c.ready <- struct{}{}:
			default:
			}
		}
		if err := c.flush(); err != nil {
			return err
		}
		if err := c.r.fill(); err != nil {
			return err
		}
	}
}

// flush writes Out, and then runs Config.Flushed.
func (c *Conn) flush() error {
	if len(c.Out) == 0 {
		return nil
	}
	c.wmu.Lock()
	_, err := c.nc.Write(c.Out)
	c.wmu.Unlock()
	c.Out = c.Out[:0]
	if err != nil {
		return err
	}
	if f := c.srv.cfg.Flushed; f != nil {
		f(c)
	}
	return nil
}

// Log returns every element the serve loop read so far, handled or not,
// in order (none with Config.Views).
func (c *Conn) Log() []*Element {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	return append([]*Element(nil), c.log...)
}

// Next returns the next element of a served connection that no Handler
// consumed. It fails tb (Fatal: call it from the test's goroutine) when
// none comes within Wait.
func (c *Conn) Next(tb testing.TB) *Element {
	tb.Helper()
	deadline := time.NewTimer(Wait)
	defer deadline.Stop()
	for {
		c.qmu.Lock()
		if len(c.queue) > 0 {
			e := c.queue[0]
			c.queue = c.queue[1:]
			c.qmu.Unlock()
			return e
		}
		c.qmu.Unlock()
		select {
		case <-c.ready:
		case <-deadline.C:
			tb.Fatal("xmpptest: nothing read from the peer")
			return nil
		}
	}
}

// Expect returns the next element as Next does, and fails tb when check
// says what is wrong with it.
func (c *Conn) Expect(tb testing.TB, check func(e *Element) error) *Element {
	tb.Helper()
	e := c.Next(tb)
	if err := check(e); err != nil {
		tb.Fatalf("xmpptest: read %s: %v", e.Raw, err)
	}
	return e
}
