package component_test

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"encoding/xml"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/component"
)

// A fake XEP-0114 server that speaks like Prosody 0.12 (see
// shared/notes/prosody.md §3) on 127.0.0.1, for unit tests of the stream
// logic. After the handshake the test scripts what the server reads and
// writes through a serverConn.

const (
	nsComponent = "jabber:component:accept"
	nsStream    = "http://etherx.jabber.org/streams"
	nsStanzas   = "urn:ietf:params:xml:ns:xmpp-stanzas"
	nsStreams   = "urn:ietf:params:xml:ns:xmpp-streams"

	compName   = "pubpresence.localhost"
	compSecret = "s3cret"

	// wait bounds how long a test waits for something to happen. It guards
	// against hanging; it is not a speed assertion.
	wait = 5 * time.Second
)

// serverMode says how the fake server treats the stream open and handshake.
type serverMode int

const (
	modeOK                serverMode = iota // answer <handshake/> to a good token
	modeNoHeader                            // accept TCP, never send the stream header
	modeNoHandshakeAnswer                   // send the header, never answer the handshake
	modeConflict                            // a good token gets <conflict/> (kick_new, name in use)
	modeDiscard                             // after the handshake, read and discard everything (benchmarks)
)

// handler sees every element the server reads after the handshake, in the
// server's reader goroutine, before the next one is read. It returns true
// when it consumed the element (it is then not queued for Next).
type handler func(sc *serverConn, e wireElem) bool

type fakeServer struct {
	t      testing.TB
	ln     net.Listener
	name   string
	secret string
	mode   serverMode

	// afterHandshake, when set, is written in the same write as <handshake/>.
	afterHandshake string
	// onConn, when set, runs in its own goroutine for every authenticated
	// connection, before the server starts reading stanzas.
	onConn func(sc *serverConn)
	// handler is installed on every authenticated connection.
	handler handler

	conns    chan *serverConn
	accepted atomic.Int64 // TCP connections accepted
	authed   atomic.Int64 // handshakes answered with <handshake/>

	mu      sync.Mutex
	all     []net.Conn
	headers []map[string]string // the client's stream header attributes
	wg      sync.WaitGroup
}

type serverOption func(*fakeServer)

func withMode(m serverMode) serverOption { return func(s *fakeServer) { s.mode = m } }
func withHandler(h handler) serverOption { return func(s *fakeServer) { s.handler = h } }
func withAfterHandshake(raw string) serverOption {
	return func(s *fakeServer) { s.afterHandshake = raw }
}
func withOnConn(f func(sc *serverConn)) serverOption { return func(s *fakeServer) { s.onConn = f } }

func newFakeServer(t testing.TB, opts ...serverOption) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := &fakeServer{t: t, ln: ln, name: compName, secret: compSecret, conns: make(chan *serverConn, 1024)}
	for _, o := range opts {
		o(s)
	}
	s.wg.Add(1)
	go s.acceptLoop()
	t.Cleanup(s.shutdown)
	return s
}

// Addr is the host:port of the component listener.
func (s *fakeServer) Addr() string { return s.ln.Addr().String() }

// config returns a Config that authenticates against s.
func (s *fakeServer) config() component.Config {
	return component.Config{Address: s.Addr(), Name: s.name, Secret: s.secret, DialTimeout: wait}
}

func (s *fakeServer) shutdown() {
	_ = s.ln.Close()
	s.mu.Lock()
	for _, c := range s.all {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *fakeServer) acceptLoop() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.accepted.Add(1)
		s.mu.Lock()
		s.all = append(s.all, nc)
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer nc.Close()
			s.serve(nc)
		}()
	}
}

// Conn waits for the next authenticated connection.
func (s *fakeServer) Conn(t testing.TB) *serverConn {
	t.Helper()
	select {
	case sc := <-s.conns:
		return sc
	case <-time.After(wait):
		t.Fatal("fake server: no authenticated connection")
		return nil
	}
}

// Headers returns the attributes of every stream header the clients sent.
func (s *fakeServer) Headers() []map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]string(nil), s.headers...)
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func streamError(cond, text string) string {
	return "<stream:error><" + cond + " xmlns='" + nsStreams + "'/><text xmlns='" + nsStreams +
		"' xml:lang='en'>" + text + "</text></stream:error>"
}

func (s *fakeServer) serve(nc net.Conn) {
	dec := xml.NewDecoder(nc)
	var hdr xml.StartElement
	for {
		tok, err := dec.Token()
		if err != nil {
			return
		}
		if se, ok := tok.(xml.StartElement); ok {
			hdr = se
			break
		}
	}
	if hdr.Name.Space != nsStream || hdr.Name.Local != "stream" {
		return
	}
	attrs := map[string]string{}
	for _, a := range hdr.Attr {
		attrs[a.Name.Local] = a.Value
	}
	s.mu.Lock()
	s.headers = append(s.headers, attrs)
	s.mu.Unlock()

	if s.mode == modeNoHeader {
		_, _ = io.Copy(io.Discard, nc) // hold the connection open
		return
	}
	if to := attrs["to"]; to != s.name {
		// Prosody: header with version='1.0' id='', then the error, at once.
		_, _ = io.WriteString(nc, "<?xml version='1.0'?><stream:stream xmlns='"+nsComponent+
			"' xmlns:stream='"+nsStream+"' version='1.0' id='' from='"+to+"'>"+
			streamError("host-unknown", to+" does not match any configured external components")+
			"</stream:stream>")
		return
	}
	id := randomID()
	_, _ = io.WriteString(nc, "<?xml version='1.0'?><stream:stream id='"+id+"' xmlns='"+nsComponent+
		"' xmlns:stream='"+nsStream+"' xml:lang='en' from='"+s.name+"'>")

	var hs struct {
		XMLName xml.Name
		Token   string `xml:",chardata"`
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return
		}
		if se, ok := tok.(xml.StartElement); ok {
			if err := dec.DecodeElement(&hs, &se); err != nil {
				return
			}
			break
		}
	}
	if hs.XMLName.Local != "handshake" || hs.XMLName.Space != nsComponent {
		_, _ = io.WriteString(nc, streamError("not-authorized", "expected a handshake")+"</stream:stream>")
		return
	}
	if s.mode == modeNoHandshakeAnswer {
		_, _ = io.Copy(io.Discard, nc)
		return
	}
	sum := sha1.Sum([]byte(id + s.secret))
	if !strings.EqualFold(strings.TrimSpace(hs.Token), hex.EncodeToString(sum[:])) {
		_, _ = io.WriteString(nc, streamError("not-authorized", "Given token does not match calculated token")+"</stream:stream>")
		return
	}
	if s.mode == modeConflict {
		_, _ = io.WriteString(nc, streamError("conflict", "Component already connected")+"</stream:stream>")
		return
	}
	sc := &serverConn{
		srv:   s,
		nc:    nc,
		dec:   dec,
		id:    id,
		elems: make(chan wireElem, 1<<16),
		gone:  make(chan struct{}),
	}
	if s.handler != nil {
		sc.SetHandler(s.handler)
	}
	if _, err := io.WriteString(nc, "<handshake/>"+s.afterHandshake); err != nil {
		return
	}
	s.authed.Add(1)
	if s.mode == modeDiscard {
		_, _ = io.Copy(io.Discard, nc)
		return
	}
	select {
	case s.conns <- sc:
	default: // nobody collects connections (Run tests): fine
	}
	if s.onConn != nil {
		go s.onConn(sc)
	}
	sc.readLoop()
}

// wireElem is one top-level element as the server read it.
type wireElem struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Inner   string     `xml:",innerxml"`
}

// Attr returns the value of the unqualified attribute name.
func (e wireElem) Attr(name string) string {
	for _, a := range e.Attrs {
		if a.Name.Space == "" && a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// serverConn is the server's side of one authenticated component stream.
type serverConn struct {
	srv *fakeServer
	nc  net.Conn
	dec *xml.Decoder
	id  string

	wmu     sync.Mutex
	h       atomic.Pointer[handler]
	silent  atomic.Bool
	elems   chan wireElem
	gone    chan struct{} // the reader has stopped
	gotEnd  atomic.Bool   // the client sent </stream:stream>
	lmu     sync.Mutex
	log     []wireElem // every element read, handled or not
	dropped atomic.Int64
}

// SetHandler replaces the handler (nil removes it).
func (sc *serverConn) SetHandler(h handler) {
	if h == nil {
		sc.h.Store(nil)
		return
	}
	sc.h.Store(&h)
}

// Silence makes the server stop answering anything, including
// </stream:stream>, while it keeps the TCP connection open and reading.
func (sc *serverConn) Silence() { sc.silent.Store(true) }

// Write sends raw bytes to the component.
func (sc *serverConn) Write(raw string) error {
	sc.wmu.Lock()
	defer sc.wmu.Unlock()
	_, err := io.WriteString(sc.nc, raw)
	return err
}

// Close drops the TCP connection without closing the stream, as Prosody does
// on SIGTERM.
func (sc *serverConn) Close() { _ = sc.nc.Close() }

// Gone is closed when the server's reader has stopped (EOF, close).
func (sc *serverConn) Gone() <-chan struct{} { return sc.gone }

// GotStreamEnd reports whether the client sent </stream:stream>.
func (sc *serverConn) GotStreamEnd() bool { return sc.gotEnd.Load() }

// Log returns every element read so far, in order.
func (sc *serverConn) Log() []wireElem {
	sc.lmu.Lock()
	defer sc.lmu.Unlock()
	return append([]wireElem(nil), sc.log...)
}

// Next returns the next element that no handler consumed.
func (sc *serverConn) Next(t testing.TB) wireElem {
	t.Helper()
	select {
	case e := <-sc.elems:
		return e
	case <-time.After(wait):
		t.Fatal("fake server: nothing read from the component")
		return wireElem{}
	}
}

// Expect reads the next unconsumed element and checks it with check.
func (sc *serverConn) Expect(t testing.TB, check func(e wireElem) error) wireElem {
	t.Helper()
	e := sc.Next(t)
	if err := check(e); err != nil {
		t.Fatalf("fake server read <%s %v>%s: %v", e.XMLName.Local, e.Attrs, e.Inner, err)
	}
	return e
}

func (sc *serverConn) readLoop() {
	defer close(sc.gone)
	for {
		tok, err := sc.dec.Token()
		if err != nil {
			return
		}
		switch t := tok.(type) {
		case xml.EndElement: // </stream:stream>
			sc.gotEnd.Store(true)
			if sc.silent.Load() {
				continue // keep the socket open, answer nothing
			}
			_ = sc.Write("</stream:stream>")
			sc.Close()
			return
		case xml.StartElement:
			var e wireElem
			if err := sc.dec.DecodeElement(&e, &t); err != nil {
				return
			}
			sc.lmu.Lock()
			sc.log = append(sc.log, e)
			sc.lmu.Unlock()
			if sc.silent.Load() {
				continue
			}
			if h := sc.h.Load(); h != nil && (*h)(sc, e) {
				continue
			}
			select {
			case sc.elems <- e:
			default:
				sc.dropped.Add(1)
			}
		}
	}
}

// iqAnswer builds the answer to the request e, from its addressee.
func iqAnswer(e wireElem, typ, inner string) string {
	return "<iq type='" + typ + "' id='" + xmlEscape(e.Attr("id")) + "' from='" + xmlEscape(e.Attr("to")) +
		"' to='" + xmlEscape(e.Attr("from")) + "'>" + inner + "</iq>"
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// isIQRequest reports whether e is an IQ get or set.
func isIQRequest(e wireElem) bool {
	t := e.Attr("type")
	return e.XMLName.Local == "iq" && (t == "get" || t == "set")
}

// isPing reports whether e is an XEP-0199 ping request.
func isPing(e wireElem) bool {
	return isIQRequest(e) && strings.Contains(e.Inner, "urn:xmpp:ping")
}

// answerAll answers every IQ request at once with an empty result.
func answerAll(sc *serverConn, e wireElem) bool {
	if !isIQRequest(e) {
		return false
	}
	_ = sc.Write(iqAnswer(e, "result", ""))
	return true
}

// answerPings answers pings with an empty result and leaves the rest queued.
func answerPings(sc *serverConn, e wireElem) bool {
	if !isPing(e) {
		return false
	}
	_ = sc.Write(iqAnswer(e, "result", ""))
	return true
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
