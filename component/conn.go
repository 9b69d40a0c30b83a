// Package component implements the XEP-0114 external component stream
// (namespace jabber:component:accept) on top of gosrc.io/xmpp's stream
// primitives: dial and handshake with a deadline, one writer, a reader that
// never blocks on a request's caller and never ends the stream on one bad
// stanza, IQ round trips with our own correlation, and an XEP-0199 keepalive.
// The stream is read by the core's Reader (internal/xmpp/reader.go), which
// takes the stanzas servers send straight from its buffer and leaves only
// the unusual ones to encoding/xml; IQ requests are correlated with their
// answers by the core's Calls (internal/xmpp/calls.go).
//
// For a server of several nodes (an ejabberd cluster), Pool keeps one
// stream per node and makes them one component: the streams share one IQ
// table (Group), and their stanzas, ups and downs come out of one channel
// (docs/ejabberd-cluster.md).
//
// gosrc.io/xmpp v0.5.1's Component is not used for the session itself: its
// reader ends the stream on any stanza it cannot decode (a <priority> out
// of int8 range is enough, and any user's client can send one), its router
// calls the handlers synchronously on the reader's goroutine, so that one
// slow handler stalls the stream, and it registers the callback of an IQ
// request only after sending it, so that a fast answer can be lost. The
// package comment of internal/xmpp/reader.go says more.
package component

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gosrc.io/xmpp/stanza"

	"github.com/pubpresence/pubpresence/internal/xmltext"
	"github.com/pubpresence/pubpresence/internal/xmpp"
)

// Config says where and as whom to connect.
type Config struct {
	Address string // host:port of the server's component listener
	Name    string // the component's JID, e.g. pubpresence.example.org
	Secret  string

	DialTimeout       time.Duration // dial + stream open + handshake; default 10s
	WriteTimeout      time.Duration // one write on the socket; default 10s
	KeepaliveInterval time.Duration // ping period; 0 disables the keepalive
	KeepaliveTimeout  time.Duration // a ping unanswered this long ends the stream; default 10s
	PingTo            string        // whom to ping (a served domain); default the component's own server via Name
	InboundQueue      int           // stanzas buffered for Inbound; default 4096

	// Instance names this process in the ids of its IQ requests (NewInstance);
	// default a new one per Conn. Answers whose id carries another instance
	// were meant for another connection with the same component name.
	Instance string
	// Foreign, if set, is called for every IQ answer the server delivered
	// on this stream that another instance's request asked for: ejabberd
	// accepts several connections for one name and spreads stanzas over
	// them at random. It runs on the reader and must not block.
	Foreign func(Foreign)
	// WriteWaited, if set, is called each time a write took WriteTimeout
	// and goes on because the server still sends (the server is busy,
	// not gone). It runs on the writer and must not block.
	WriteWaited func()

	// Group, if set, makes this stream one of several that act as one
	// component (one per node of a cluster): they share one IQ table, so
	// an answer is matched on whichever of them it arrives (see Group).
	// Name must be the Group's, and Instance "" or the Group's.
	Group *Group

	// events, set by a Pool, takes the stream's stanzas as the Pool's
	// Events of stream number stream, from the reader itself: no goroutine
	// in between. The reader waits for the Pool's EventUp first (Conn.up).
	events chan<- Event
	stream int
}

// Foreign describes an IQ answer meant for another connection that uses the
// same component name (Config.Foreign).
type Foreign struct {
	ID       string
	Instance string // the other instance, "" when the id is not one of ours
	// Older: the other connection's stream started before this one (false
	// when unknown), so by the rule "the earlier stream stays" this one
	// should give way. For the streams of a Group, the group's making
	// counts as their start.
	Older bool
}

// NewInstance returns a random token that names one process in IQ ids.
func NewInstance() string {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	return hex.EncodeToString(rnd[:])
}

func (c *Config) withDefaults() Config {
	cfg := *c
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.KeepaliveTimeout <= 0 {
		cfg.KeepaliveTimeout = 10 * time.Second
	}
	if cfg.PingTo == "" {
		cfg.PingTo = cfg.Name
	}
	if cfg.InboundQueue <= 0 {
		cfg.InboundQueue = 4096
	}
	return cfg
}

// Stanza is one inbound presence or message (IQ requests are answered by
// the Conn itself, IQ results go to their callers). Inner is the raw XML
// between the start and end tags.
type Stanza struct {
	Name               string // presence, message, iq
	ID, Type, From, To string
	Inner              []byte
}

// Stats counts what the reader saw; read it with Conn.Stats.
type Stats struct {
	Received       uint64 // top-level stanzas read
	UnknownResults uint64 // IQ results whose id matches no request in flight
	ForeignResults uint64 // of those, the ones another instance asked for
	Dropped        uint64 // stanzas not queued because the writer was full (TrySend, replies to pings and disco)
	WriteWaits     uint64 // writes that took WriteTimeout and went on because the server was still sending
}

// Conn is one authenticated component stream. All methods are safe for
// concurrent use. A Conn is not reused after it ends: dial a new one.
type Conn struct {
	cfg   Config
	nc    net.Conn
	rd    *xmpp.Reader // owned by readLoop
	start time.Time

	// The one writer's queue: the stanzas waiting, one after another, in
	// the order queued. The writer takes them all at each turn and writes
	// them with one system call (writeLoop).
	wmu     sync.Mutex
	wq      []byte
	wroom   chan struct{} // closed at the writer's next turn; made by a sender waiting for room
	wake    chan struct{} // cap 1: wq has something
	inbound chan Stanza
	// up is closed by the Pool once it has handed on EventUp (cfg.events);
	// upSeen is the reader's note that it was.
	up     chan struct{}
	upSeen bool

	// calls holds the IQ requests in flight; their ids are the instance,
	// stamp in base 36 and "-", then a sequence number (see foreignID).
	// With a Group it is the group's, shared with its other streams, and
	// holds this stream's requests under the owner c.
	calls  *xmpp.Calls[[]byte]
	shared bool
	stamp  int64 // UnixNano in the ids: the stream's start, or the Group's

	done      chan struct{}
	closeOnce sync.Once
	closing   atomic.Bool
	err       error // why the stream ended; set before done is closed
	readDone  chan struct{}

	received, unknown, dropped, foreign atomic.Uint64
	// writeWaits counts the writes that took WriteTimeout and went on
	// because the server was still sending (patientWriter).
	writeWaits atomic.Uint64
	clock      *readClock // when bytes last came
	// blocked is set while the reader waits for room in inbound: the
	// server is sending more than the session takes, so it is alive.
	blocked atomic.Bool
}

// maxQueued is how many bytes of stanzas wait for the writer at most: a
// sender waits for room beyond it (TrySend and the answers to pings fail).
// A stanza is always taken into an empty queue, however large.
const maxQueued = 256 << 10

// maxKeptBuf is the largest buffer the writer keeps for its next turn: a
// rare burst does not stay in memory.
const maxKeptBuf = 1 << 20

// Dial connects, opens the stream and authenticates, all within
// cfg.DialTimeout (or ctx, whichever ends first). A rejected handshake
// comes back as a *StreamError ("not-authorized", "conflict", "host-unknown").
func Dial(ctx context.Context, cfg Config) (*Conn, error) {
	cfg = cfg.withDefaults()
	if g := cfg.Group; g != nil {
		if err := g.check(&cfg); err != nil {
			return nil, err
		}
		cfg.Instance = g.instance
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", cfg.Address, err)
	}
	// No socket deadline of its own: it would fire before ctx is marked done,
	// and the error would not say why. AfterFunc runs once ctx.Err() is set.
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	c, err := handshake(nc, cfg)
	if !stop() && err == nil {
		// ctx ended just as the handshake succeeded: the socket's deadline
		// is (being) set in the past, so this stream is unusable.
		err = ctx.Err()
	}
	if err != nil {
		_ = nc.Close()
		if ctx.Err() != nil && !isStreamError(err) {
			return nil, fmt.Errorf("handshake with %s: %w", cfg.Address, ctx.Err())
		}
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	go c.readLoop()
	go c.writeLoop()
	if cfg.KeepaliveInterval > 0 {
		go c.keepalive()
	}
	return c, nil
}

func isStreamError(err error) bool {
	var se *StreamError
	return errors.As(err, &se)
}

func handshake(nc net.Conn, cfg Config) (*Conn, error) {
	open := fmt.Sprintf("<?xml version='1.0'?><stream:stream xmlns='%s' xmlns:stream='%s' to='%s'>",
		xmpp.NSComponent, xmpp.NSStream, escape(cfg.Name))
	if _, err := io.WriteString(nc, open); err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	clock := &readClock{r: nc}
	rd := xmpp.NewReader(clock)
	rd.Self = cfg.Name
	rd.TransientAnswers = true // deliver copies what it keeps
	hdr, err := rd.Header()
	if err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	var id string
	for _, a := range hdr.Attr {
		if a.Name.Local == "id" {
			id = a.Value
		}
	}
	sum := sha1.Sum([]byte(id + cfg.Secret))
	if _, err := io.WriteString(nc, "<handshake>"+hex.EncodeToString(sum[:])+"</handshake>"); err != nil {
		return nil, fmt.Errorf("send handshake: %w", err)
	}
	p, err := stanza.NextPacket(rd.Decoder())
	if err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	switch p := p.(type) {
	case stanza.Handshake:
	case stanza.StreamError:
		return nil, &StreamError{Condition: xmpp.StreamCondition(p.Error.Local), Text: p.Text}
	default:
		return nil, fmt.Errorf("handshake: unexpected <%s/>", p.Name())
	}
	if cfg.Instance == "" {
		cfg.Instance = NewInstance()
	}
	start := time.Now()
	stamp, calls, shared := start.UnixNano(), (*xmpp.Calls[[]byte])(nil), false
	if g := cfg.Group; g != nil {
		stamp, calls, shared = g.stamp, g.calls, true
	} else {
		calls = newCalls(cfg.Name, cfg.Instance, stamp)
	}
	return &Conn{
		cfg:      cfg,
		nc:       nc,
		rd:       rd,
		clock:    clock,
		calls:    calls,
		shared:   shared,
		stamp:    stamp,
		start:    start,
		wake:     make(chan struct{}, 1),
		inbound:  make(chan Stanza, cfg.InboundQueue),
		up:       make(chan struct{}),
		done:     make(chan struct{}),
		readDone: make(chan struct{}),
	}, nil
}

// Name returns the component's JID.
func (c *Conn) Name() string { return c.cfg.Name }

// Started returns when the stream was authenticated. The ids of its
// requests carry it (or, in a Group, when the group was made), so that of
// two connections with one name each can tell which came first.
func (c *Conn) Started() time.Time { return c.start }

// Inbound delivers presences and messages, in stream order. When nobody reads it and its buffer is full, the reader waits: read
// it from a loop that never waits on this Conn's requests. The Conns of a
// Pool hand them to the Pool's Events instead, and Inbound stays empty.
func (c *Conn) Inbound() <-chan Stanza { return c.inbound }

// Done is closed when the stream has ended; Err then says why.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the stream ended, or nil while it is up.
func (c *Conn) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Stats returns the reader's counters.
func (c *Conn) Stats() Stats {
	return Stats{Received: c.received.Load(), UnknownResults: c.unknown.Load(),
		ForeignResults: c.foreign.Load(), Dropped: c.dropped.Load(), WriteWaits: c.writeWaits.Load()}
}

// Close ends the stream: it sends </stream:stream>, waits a short while for
// the server's own close, and closes the socket.
func (c *Conn) Close() error {
	c.closing.Store(true)
	c.tryQueue(func(b []byte) []byte { return append(b, stanza.StreamClose...) })
	select {
	case <-c.readDone:
	case <-time.After(time.Second):
	}
	c.fail(ErrClosed)
	return nil
}

// fail ends the stream once, with err as the reason.
func (c *Conn) fail(err error) {
	c.closeOnce.Do(func() {
		c.err = err
		close(c.done)
		_ = c.nc.Close()
		err = fmt.Errorf("%w: %w", ErrClosed, err)
		if c.shared {
			c.calls.FailBy(c, err) // the group's other streams go on
		} else {
			c.calls.Close(err)
		}
	})
}

// Send queues one stanza, already serialised, for the writer. It waits while
// the writer's queue is full, until ctx ends or the stream does.
func (c *Conn) Send(ctx context.Context, raw []byte) error {
	return c.queue(ctx, len(raw), func(b []byte) []byte { return append(b, raw...) })
}

// queue appends a stanza to the writer's queue with add, under its lock,
// once the queue has room for about size bytes; it waits for room until
// ctx ends or the stream does. Stanzas queued one after another go out in
// that order.
func (c *Conn) queue(ctx context.Context, size int, add func([]byte) []byte) error {
	for {
		select { // an ended stream wins over a queue with room in it
		case <-c.done:
			return fmt.Errorf("%w: %v", ErrClosed, c.err)
		default:
		}
		c.wmu.Lock()
		if len(c.wq) == 0 || len(c.wq)+size <= maxQueued {
			c.wq = add(c.wq)
			c.wmu.Unlock()
			c.wakeWriter()
			return nil
		}
		if c.wroom == nil {
			c.wroom = make(chan struct{})
		}
		room := c.wroom
		c.wmu.Unlock()
		select {
		case <-room:
		case <-c.done:
			return fmt.Errorf("%w: %v", ErrClosed, c.err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// tryQueue appends a stanza to the writer's queue with add if it has room
// (maxQueued) and the stream is up, and reports whether it did.
func (c *Conn) tryQueue(add func([]byte) []byte) bool {
	select {
	case <-c.done:
		return false
	default:
	}
	c.wmu.Lock()
	if len(c.wq) >= maxQueued {
		c.wmu.Unlock()
		return false
	}
	c.wq = add(c.wq)
	c.wmu.Unlock()
	c.wakeWriter()
	return true
}

func (c *Conn) wakeWriter() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// TrySend queues one serialised stanza if the writer's queue has room, and
// reports whether it did. It never waits: use it where waiting could stall
// the reader of this stream (a loop that reads Inbound).
func (c *Conn) TrySend(raw []byte) bool {
	if c.tryQueue(func(b []byte) []byte { return append(b, raw...) }) {
		return true
	}
	select {
	case <-c.done:
	default:
		c.dropped.Add(1)
	}
	return false
}

// SendPresence sends a presence from the component to to. typ is "" for
// available; show and status are left out when empty.
func (c *Conn) SendPresence(ctx context.Context, to, typ, show, status string) error {
	return c.Send(ctx, c.Presence(to, typ, show, status))
}

// Presence returns a presence from the component to to, serialised.
func (c *Conn) Presence(to, typ, show, status string) []byte {
	return presenceStanza(c.cfg.Name, to, typ, show, status)
}

// presenceStanza returns a presence from the component name to to.
func presenceStanza(name, to, typ, show, status string) []byte {
	b := make([]byte, 0, 128)
	b = append(b, "<presence from='"...)
	b = xmltext.Append(b, name)
	b = append(b, "' to='"...)
	b = xmltext.Append(b, to)
	if typ != "" {
		b = append(b, "' type='"...)
		b = xmltext.Append(b, typ)
	}
	b = append(b, "'>"...)
	if show != "" {
		b = append(b, "<show>"...)
		b = xmltext.Append(b, show)
		b = append(b, "</show>"...)
	}
	if status != "" {
		b = append(b, "<status>"...)
		b = xmltext.Append(b, status)
		b = append(b, "</status>"...)
	}
	return append(b, "</presence>"...)
}

// IQ sends an IQ request of type typ ("get" or "set") to to with payload as
// its child, and returns the inner XML of the result. An error answer comes
// back as a *StanzaError. ctx bounds the round trip; when it ends first, a
// late answer is dropped and counted.
func (c *Conn) IQ(ctx context.Context, typ, to string, payload []byte) ([]byte, error) {
	call, err := c.Start(ctx, typ, to, payload)
	if err != nil {
		return nil, err
	}
	return call.Wait(ctx)
}

// Call is an IQ request on its way (see xmpp.Call): Wait collects the
// inner XML of its result, or a *StanzaError for an error answer; Done,
// Result and Abandon let a caller wait for many calls at once, with one
// timer of its own, and without a context or a goroutine per call. When
// the stream ends first, its error wraps ErrClosed.
type Call = xmpp.Call[[]byte]

// Start queues an IQ request and returns without waiting for the answer.
// Requests started one after another go out on the stream in that order.
// The request is registered before it is sent, so a fast answer is never
// lost. payload is copied: the caller may reuse it at once. A Call whose
// answer never comes holds its place until the stream ends, unless Wait's
// ctx ends or Abandon is called: every Call must be waited for, have its
// Result read once Done is closed, or be abandoned. In a Group, the answer
// may come on any of the group's streams, but the Call ends with this
// stream all the same.
func (c *Conn) Start(ctx context.Context, typ, to string, payload []byte) (*Call, error) {
	select {
	case <-c.done:
		return nil, fmt.Errorf("%w: %v", ErrClosed, c.err)
	default:
	}
	call, err := c.calls.StartBy(c, to)
	if err != nil {
		// Only a table of its own is closed, and c.err was set before.
		return nil, fmt.Errorf("%w: %v", ErrClosed, c.err)
	}
	// A stream that ends from now on fails call (FailBy, Close); one that
	// ended since the check above makes send fail, and call is abandoned.
	if err := c.sendIQ(ctx, typ, to, call.Seq(), payload); err != nil {
		call.Abandon()
		return nil, err
	}
	return call, nil
}

// Notify is told the outcome of a request started with StartNotify (see
// xmpp.Notify): the inner XML of its result, or a *StanzaError for an
// error answer, or an error wrapping ErrClosed when the stream ends first.
type Notify = xmpp.Notify[[]byte]

// StartNotify is Start for a caller that waits for many requests at once,
// without a Call, a channel or a goroutine per request: it returns the
// request's sequence number, and its outcome goes to n.Answered, exactly
// once (perhaps before StartNotify returns), unless Abandon(seq) reports
// true first. When it returns an error, n is never told.
func (c *Conn) StartNotify(ctx context.Context, typ, to string, payload []byte, n Notify) (uint64, error) {
	select {
	case <-c.done:
		return 0, fmt.Errorf("%w: %v", ErrClosed, c.err)
	default:
	}
	seq, err := c.calls.StartNotifyBy(c, to, n)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrClosed, c.err)
	}
	if err := c.sendIQ(ctx, typ, to, seq, payload); err != nil {
		if c.calls.Abandon(seq) {
			return 0, err
		}
		// The stream's end took it first (FailBy, Close): n is told.
	}
	return seq, nil
}

// Abandon gives up the request seq of StartNotify (see xmpp.Calls.Abandon):
// it reports whether the request was still waiting, and then its Notify is
// never told.
func (c *Conn) Abandon(seq uint64) bool { return c.calls.Abandon(seq) }

// sendIQ queues the IQ request seq of c.calls, written straight into the
// writer's queue.
func (c *Conn) sendIQ(ctx context.Context, typ, to string, seq uint64, payload []byte) error {
	return c.queue(ctx, len(payload)+len(to)+128, func(b []byte) []byte {
		b = append(b, "<iq type='"...)
		b = append(b, typ...)
		b = append(b, "' id='"...)
		b = c.calls.AppendID(b, seq)
		b = append(b, "' from='"...)
		b = xmltext.Append(b, c.cfg.Name)
		b = append(b, "' to='"...)
		b = xmltext.Append(b, to)
		b = append(b, "'>"...)
		b = append(b, payload...)
		return append(b, "</iq>"...)
	})
}

// writeLoop writes what is queued: at each turn it takes all of it, and
// writes it with one system call, while senders go on filling the other
// buffer.
func (c *Conn) writeLoop() {
	var buf []byte
	for {
		select {
		case <-c.wake:
		case <-c.done:
			return
		}
		c.wmu.Lock()
		buf, c.wq = c.wq, buf[:0]
		if c.wroom != nil {
			close(c.wroom)
			c.wroom = nil
		}
		c.wmu.Unlock()
		if len(buf) == 0 {
			continue
		}
		if _, err := (patientWriter{c}).Write(buf); err != nil {
			c.fail(fmt.Errorf("write: %w", err))
			return
		}
		if cap(buf) > maxKeptBuf {
			buf = nil
		}
	}
}

// patientWriter writes on the socket with WriteTimeout for each step, and
// goes on while the server sends: a server busy with a storm of clients
// reads the component's socket in its turn with theirs, and may leave it
// unread for longer than WriteTimeout while it is alive. A write fails once
// nothing has been read from the server for WriteTimeout (or, when longer,
// KeepaliveInterval + KeepaliveTimeout: a silence the keepalive survives),
// or after 10 × WriteTimeout in all (xmpp.Patience).
type patientWriter struct{ c *Conn }

func (p patientWriter) Write(b []byte) (int, error) {
	c := p.c
	quiet := c.cfg.WriteTimeout
	if c.cfg.KeepaliveInterval > 0 { // no shorter than a silence the keepalive survives
		quiet = max(quiet, c.cfg.KeepaliveInterval+c.cfg.KeepaliveTimeout)
	}
	patience := xmpp.Patience{Quiet: quiet, Max: 10 * c.cfg.WriteTimeout, Last: c.lastReadTime}
	start, written := time.Now(), 0
	for {
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
		n, err := c.nc.Write(b[written:])
		written += n
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			return written, err
		}
		if expired, _ := patience.Check(start, time.Now()); expired {
			return written, err
		}
		c.writeWaits.Add(1)
		if c.cfg.WriteWaited != nil {
			c.cfg.WriteWaited()
		}
	}
}

// lastReadTime returns when bytes last came (readClock), the zero time
// before.
func (c *Conn) lastReadTime() time.Time {
	if n := c.clock.at.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

func (c *Conn) readLoop() {
	defer close(c.readDone)
	var el xmpp.Element
	for {
		err := c.rd.Next(&el)
		switch {
		case errors.Is(err, xmpp.ErrStreamEnd):
			if c.closing.Load() {
				c.fail(ErrClosed)
				return
			}
			c.fail(&StreamError{Condition: StreamClosed, Text: "server closed the stream"})
			return
		case err != nil:
			c.fail(readError(err))
			return
		}
		c.received.Add(1)
		// The server is alive: its requests wait (xmpp.Patience). The
		// element's bytes came at the clock's last read or before: no
		// clock read per element (a tenth of a microsecond per event).
		c.calls.Heard(c.clock.at.Load())
		if el.IsStreamError() {
			c.fail(xmpp.ParseStreamError(el.Inner))
			return
		}
		if !c.dispatch(stanzaOf(&el)) {
			return
		}
	}
}

// readError words an error of the Reader for Conn.Err.
func readError(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = errors.New("the server closed the connection without closing the stream")
	}
	return fmt.Errorf("read: %w", err)
}

// stanzaOf returns the Stanza of an element the Reader read.
func stanzaOf(el *xmpp.Element) Stanza {
	return Stanza{Name: el.Name.Local, ID: el.ID, Type: el.Type, From: el.From, To: el.To, Inner: el.Inner}
}

// dispatch handles one element; it returns false when the stream ended
// while waiting to queue it.
func (c *Conn) dispatch(s Stanza) bool {
	if s.Name == "iq" {
		switch s.Type {
		case "result", "error":
			c.deliver(s)
			return true
		case "get", "set":
			if c.answer(s) {
				return true
			}
		default:
			return true // not an IQ: ignore
		}
	}
	if c.cfg.events != nil {
		return c.toPool(s)
	}
	select {
	case c.inbound <- s:
		return true
	default:
	}
	c.blocked.Store(true)
	defer c.blocked.Store(false)
	select {
	case c.inbound <- s:
		return true
	case <-c.done:
		return false
	}
}

// toPool hands a stanza to the Pool's Events, once the Pool has handed on
// the stream's EventUp; it returns false when the stream ended while
// waiting.
func (c *Conn) toPool(s Stanza) bool {
	ev := Event{Stream: c.cfg.stream, Kind: EventStanza, Stanza: s}
	if c.upSeen {
		select {
		case c.cfg.events <- ev:
			return true
		default:
		}
	}
	c.blocked.Store(true)
	defer c.blocked.Store(false)
	if !c.upSeen {
		select {
		case <-c.up:
			c.upSeen = true
		case <-c.done:
			return false
		}
	}
	select {
	case c.cfg.events <- ev:
		return true
	case <-c.done:
		return false
	}
}

// deliver hands an IQ result to its waiter without ever blocking. The
// answer's ID and From are the Reader's (TransientAnswers): valid until
// the next element is read, and copied if kept.
func (c *Conn) deliver(s Stanza) {
	inner, err := s.Inner, error(nil)
	if s.Type == "error" {
		inner, err = nil, xmpp.ParseError(s.Inner)
	}
	if c.calls.Deliver(s.ID, s.From, inner, err) {
		return
	}
	c.unknown.Add(1)
	if f, ok := c.foreignID(s.ID); ok {
		c.foreign.Add(1)
		if c.cfg.Foreign != nil {
			c.cfg.Foreign(f)
		}
	}
}

// foreignID reports whether id is not one of this instance's, and if it
// has the shape of another pubpresence instance's, whose stream is older.
// Late answers to this instance's earlier streams, and to the other
// streams of its Group, are not foreign.
func (c *Conn) foreignID(id string) (Foreign, bool) {
	inst, rest, ok := strings.Cut(id, ".")
	if ok && inst == c.cfg.Instance {
		return Foreign{}, false
	}
	f := Foreign{ID: strings.Clone(id)} // id is the Reader's (deliver)
	stamp, _, ok2 := strings.Cut(rest, "-")
	if !ok || !ok2 || inst == "" {
		return f, true // not a pubpresence id: some other client of this name
	}
	f.Instance = f.ID[:len(inst)]
	if ns, err := strconv.ParseInt(stamp, 36, 64); err == nil {
		mine := c.stamp
		f.Older = ns < mine || ns == mine && inst < c.cfg.Instance
	}
	return f, true
}

// answer replies to the IQ requests every component must answer (ping and
// disco#info); it returns false for the others.
func (c *Conn) answer(s Stanza) bool {
	q, _ := xmpp.FirstChild(s.Inner)
	var reply []byte
	switch {
	case s.Type == "get" && q.Name.Space == xmpp.NSPing && q.Name.Local == "ping":
		reply = c.reply(s, "result", "")
	case s.Type == "get" && q.Name.Space == xmpp.NSDiscoInfo && q.Name.Local == "query":
		reply = c.reply(s, "result", "<query xmlns='"+xmpp.NSDiscoInfo+"'>"+
			"<identity category='component' type='presence' name='pubpresence'/>"+
			"<feature var='"+xmpp.NSDiscoInfo+"'/><feature var='"+xmpp.NSPing+"'/></query>")
	default:
		reply = c.reply(s, "error", string(unavailable.AppendXML(nil)))
	}
	c.TrySend(reply)
	return true
}

// unavailable answers the requests a component does not serve.
var unavailable = &xmpp.StanzaError{Type: "cancel", Condition: xmpp.ErrServiceUnavailable}

func (c *Conn) reply(s Stanza, typ, payload string) []byte {
	b := make([]byte, 0, 96+len(payload))
	b = append(b, "<iq type='"...)
	b = append(b, typ...)
	b = append(b, "' id='"...)
	b = xmltext.Append(b, s.ID)
	b = append(b, "' from='"...)
	b = xmltext.Append(b, c.cfg.Name)
	b = append(b, "' to='"...)
	b = xmltext.Append(b, s.From)
	b = append(b, "'>"...)
	b = append(b, payload...)
	return append(b, "</iq>"...)
}

// keepalive pings the server every KeepaliveInterval and ends the stream when
// nothing at all has been read for KeepaliveTimeout after a ping (a reader
// waiting for room in Inbound counts as reading, and so do the bytes of an
// element not read whole yet). An error
// answer still proves the peer alive (XEP-0199 §4), and so does any other
// stanza: a server busy with a flood may answer the ping late, but a dead
// peer sends nothing.
func (c *Conn) keepalive() {
	t := time.NewTicker(c.cfg.KeepaliveInterval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		if err := c.ping(); err != nil {
			c.fail(err)
			return
		}
	}
}

// ping sends a ping and waits for its answer. When none comes within
// KeepaliveTimeout but something else was read meanwhile, the server is
// alive and busy: it pings again. It fails when a whole KeepaliveTimeout
// after a ping passes with nothing read.
func (c *Conn) ping() error {
	for {
		sent := time.Now().UnixNano()
		call, err := c.Start(context.Background(), "get", c.cfg.PingTo, []byte("<ping xmlns='"+xmpp.NSPing+"'/>"))
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.KeepaliveTimeout)
		_, err = call.Wait(ctx)
		cancel()
		var se *StanzaError
		if err == nil || errors.As(err, &se) {
			return nil
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		if c.clock.at.Load() < sent && !c.blocked.Load() {
			return fmt.Errorf("keepalive: nothing read for %s after a ping", c.cfg.KeepaliveTimeout)
		}
	}
}

// readClock is the socket as the stream's reader reads it: it notes when
// bytes last came. One element can take longer than KeepaliveTimeout to
// arrive and be read (the actual node's items at a million connections
// are some 250 MB): while its bytes come, the server is alive.
type readClock struct {
	r  io.Reader
	at atomic.Int64 // UnixNano of the last read that brought bytes
}

func (rc *readClock) Read(p []byte) (int, error) {
	n, err := rc.r.Read(p)
	if n > 0 {
		rc.at.Store(time.Now().UnixNano())
	}
	return n, err
}

func escape(s string) string { return string(xmltext.Append(nil, s)) }
