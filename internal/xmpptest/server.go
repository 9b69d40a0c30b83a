// Package xmpptest is a fake XMPP server for unit tests, on 127.0.0.1.
//
// It serves both kinds of stream pubpresence speaks: a component's
// (XEP-0114: stream header, handshake, then stanzas), which it
// authenticates itself and then serves, and a client's (RFC 6120: stream
// features, STARTTLS, SASL, resource binding), which a test scripts step
// by step with Conn's methods. Either way there is one accept loop, one
// reader of the peer's top-level elements (Conn.Read) and one way to
// answer them: a Handler, called by the serve loop for every element it
// reads, or a Script that reads and writes itself.
//
// The real servers, for integration tests, are internal/testserver's.
package xmpptest

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Wait bounds every wait of the fake: for a connection, an element, a
// script to end. It guards against hanging; it is not a speed assertion.
const Wait = 5 * time.Second

// Mode says how a component server treats the stream open and handshake.
type Mode int

const (
	ModeOK                Mode = iota // answer <handshake/> to a good token
	ModeNoHeader                      // read the header, never send one
	ModeNoHandshakeAnswer             // send the header, never answer the handshake
	ModeConflict                      // a good token gets <conflict/> (Prosody: the name is in use)
	ModeDiscard                       // after the handshake, read and discard everything (benchmarks)
)

// A Handler sees every element a served connection reads, in the serve
// loop, before the next one is read. It returns true when it consumed the
// element; the others are queued for Conn.Next.
type Handler func(c *Conn, e *Element) bool

// Config says what a Server does with each connection.
type Config struct {
	// Name and Secret, with Name set, make a component server (XEP-0114):
	// it reads the stream header, refuses another name than Name, answers
	// the handshake for Secret as Mode says, and then runs Script or, with
	// none, serves the stream with Handler. Without Name the server
	// speaks client streams (jabber:client), all of which is Script's.
	Name, Secret string
	Mode         Mode
	// AfterHandshake, when set, is written in the same write as
	// <handshake/> (Prosody's mod_privilege sends stanzas so).
	AfterHandshake string
	// Handler is the handler of every served connection (Conn.SetHandler
	// replaces it on one).
	Handler Handler
	// Flushed, when set, runs in the serve loop after each write of what
	// the Handler put in Conn.Out.
	Flushed func(c *Conn)
	// Views hands the Handler views instead of checked and decoded
	// Elements, and keeps no Log: for benchmarks, where the fake must
	// allocate nothing per element. What the Handler leaves is queued
	// as usual.
	Views bool
	// Script, when set, runs on every connection in its own goroutine:
	// from the start for a client stream, after the handshake for a
	// component's. The connection is closed when it returns.
	Script func(c *Conn)
}

// Server is the fake server. It listens on 127.0.0.1 until the test ends.
type Server struct {
	tb  testing.TB
	cfg Config
	ln  net.Listener

	conns    chan *Conn
	accepted atomic.Int64
	authed   atomic.Int64

	mu      sync.Mutex
	all     []*Conn
	headers []map[string]string
	err     error // the first error a connection ended with

	wg      sync.WaitGroup // the accept loop and the connections
	scripts sync.WaitGroup
	closed  atomic.Bool
}

// NewServer starts a server; it stops when the test ends.
func NewServer(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("xmpptest: listen: %v", err)
	}
	s := &Server{tb: tb, cfg: cfg, ln: ln, conns: make(chan *Conn, 1024)}
	s.wg.Add(1)
	go s.acceptLoop()
	tb.Cleanup(s.Close)
	return s
}

// Addr is the host:port the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Accepted is how many TCP connections the server accepted.
func (s *Server) Accepted() int64 { return s.accepted.Load() }

// Authenticated is how many component handshakes it answered with
// <handshake/>.
func (s *Server) Authenticated() int64 { return s.authed.Load() }

// Headers returns the attributes of every stream header the peers sent,
// by local name.
func (s *Server) Headers() []map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]string(nil), s.headers...)
}

// Err returns the first error a connection ended with, other than the
// peer closing it: a refused handshake, a read that failed, XML that did
// not parse.
func (s *Server) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Conn waits for the next connection: for a component server, the next
// authenticated one.
func (s *Server) Conn(tb testing.TB) *Conn {
	tb.Helper()
	select {
	case c := <-s.conns:
		return c
	case <-time.After(Wait):
		tb.Fatal("xmpptest: no connection")
		return nil
	}
}

// All returns every connection the server accepted so far, in order.
func (s *Server) All() []*Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Conn(nil), s.all...)
}

// Close stops the server: it stops listening, gives running scripts up to
// Wait to end, then closes every connection and waits for them. It runs
// when the test ends.
func (s *Server) Close() {
	s.mu.Lock() // acceptLoop adds connections and scripts under mu, unless closed
	already := s.closed.Swap(true)
	s.mu.Unlock()
	if already {
		return
	}
	_ = s.ln.Close()
	if !waitGroup(&s.scripts) {
		s.tb.Error("xmpptest: a script did not finish")
	}
	s.mu.Lock()
	for _, c := range s.all {
		c.Close()
	}
	s.mu.Unlock()
	if !waitGroup(&s.wg) {
		s.tb.Error("xmpptest: a connection did not end")
	}
}

// waitGroup waits for wg, up to Wait.
func waitGroup(wg *sync.WaitGroup) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(Wait):
		return false
	}
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.accepted.Add(1)
		c := newConn(s, nc)
		s.mu.Lock()
		if s.closed.Load() {
			s.mu.Unlock()
			_ = nc.Close()
			return
		}
		s.all = append(s.all, c)
		s.wg.Add(1)
		if s.cfg.Script != nil {
			s.scripts.Add(1)
		}
		s.mu.Unlock()
		go s.serveConn(c)
	}
}

func (s *Server) serveConn(c *Conn) {
	defer s.wg.Done()
	defer close(c.gone)
	defer c.Close()
	if s.cfg.Script != nil {
		defer s.scripts.Done()
	}
	if s.cfg.Name != "" {
		ok, err := c.acceptComponent()
		if !ok {
			s.fail(err)
			return
		}
	}
	select {
	case s.conns <- c:
	default: // nobody collects connections: fine
	}
	switch {
	case s.cfg.Script != nil:
		s.cfg.Script(c)
	case s.cfg.Name != "" && s.cfg.Mode == ModeDiscard:
		c.discard()
	default:
		s.fail(c.Serve())
	}
}

// fail records err as the server's first error, unless it is the peer (or
// the test) closing the connection.
func (s *Server) fail(err error) {
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || s.closed.Load() {
		return
	}
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
}

func (s *Server) addHeader(attrs map[string]string) {
	s.mu.Lock()
	s.headers = append(s.headers, attrs)
	s.mu.Unlock()
}
