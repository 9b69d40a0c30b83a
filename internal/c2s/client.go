package c2s

import (
	"github.com/pubpresence/pubpresence/internal/xmltext"

	"context"
	"crypto/tls"
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

	"github.com/pubpresence/pubpresence/internal/xmpp"
)

// Tunables. StanzaBuffer is the capacity of the Stanzas channel.
const (
	StanzaBuffer   = 4096
	defaultTimeout = 10 * time.Second
	writeTimeout   = 30 * time.Second
	closeWait      = 2 * time.Second
)

// Config says where and as whom to log in.
type Config struct {
	Addr     string        // server c2s address, "127.0.0.1:5222"
	JID      string        // bare JID, "alice@localhost"
	Password string        // account password
	Resource string        // requested resource; "" lets the server pick
	Timeout  time.Duration // bound on dial and login; 0 means 10s
	// Mechanism forces a SASL mechanism (MechSCRAMSHA256, MechPlain, …):
	// the login fails if the server does not offer it. "" picks the
	// strongest the server offers: SCRAM-SHA-256-PLUS, SCRAM-SHA-256,
	// SCRAM-SHA-1-PLUS, SCRAM-SHA-1, then PLAIN. PLAIN is used only over
	// TLS, forced or not (ErrPlainWithoutTLS); -PLUS only on TLS 1.3
	// (ErrChannelBinding), and unforced only when the server advertises
	// tls-exporter (XEP-0440). Client.Mechanism says which was used.
	Mechanism string
	// TLS, when set, makes STARTTLS (RFC 6120 §5) mandatory: a server that
	// does not offer it is refused (ErrTLSNotOffered), and nothing else is
	// sent before the handshake. Dial uses a clone of it; an empty
	// ServerName becomes the JID's domain, which the server's certificate
	// must name. Nil means plain TCP: a server that offers STARTTLS as
	// optional is used without it, and one that requires it is refused
	// (ErrTLSRequired). There is no opportunistic mode: encryption the
	// caller did not ask for would not be verified against anything.
	TLS *tls.Config
}

// Stanza is one inbound top-level element of the stream.
type Stanza struct {
	Name  string // "message", "presence" or "iq"
	Type  string
	From  string
	To    string
	ID    string
	Inner []byte // the content between the start and end tags, as received
	Raw   []byte // the whole element, as received
	// Seq is the element's position in the stream (1, 2, …), counted over
	// every stanza including IQ answers. It orders a Request's answer
	// against the stanzas delivered on Stanzas.
	Seq uint64
}

// Client is one logged-in session. It is safe for concurrent use: writes
// are serialised by one mutex, and one goroutine reads the stream.
//
// The reader delivers every stanza except IQ answers on Stanzas. When that
// channel's buffer (StanzaBuffer) is full the reader blocks, and so do IQ
// answers behind it: a caller that waits for an IQ answer must keep
// draining Stanzas (from another goroutine) or expect few stanzas.
type Client struct {
	conn   net.Conn // the stream: raw, or a *tls.Conn over raw after STARTTLS
	raw    net.Conn // the TCP connection
	jid    string   // bound full JID
	bare   string
	domain string
	mech   string // the SASL mechanism of the login

	wmu     sync.Mutex
	wclosed atomic.Bool // no more writes

	calls *xmpp.Calls[Stanza] // the requests of Request, by id

	mu       sync.Mutex
	approved map[string]bool // lower-cased bare JIDs of ApproveAndSubscribe

	stanzas   chan Stanza
	quit      chan struct{} // closed by Close/Abort: stop blocking on stanzas
	closeOnce sync.Once
	done      chan struct{} // closed when the reader ends
	err       error         // why the reader ended; read after done
}

// Dial connects, opens the stream, negotiates TLS when cfg.TLS is set,
// authenticates and binds a resource. It does not send initial presence
// (see Presence). See Config.TLS for how STARTTLS is handled; the TLS
// handshake is bounded by cfg.Timeout like the rest of the login.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	j, err := xmpp.ParseJID(cfg.JID)
	if err != nil || j.Local == "" {
		return nil, fmt.Errorf("c2s: JID %q: need user@domain", cfg.JID)
	}
	bare, local, domain, res := j.Bare(), j.Local, j.Domain, j.Resource
	if cfg.Resource != "" {
		res = cfg.Resource
	}
	if err := forcedRefusal(cfg); err != nil {
		return nil, fmt.Errorf("c2s: login %s: SASL %s: %w", bare, cfg.Mechanism, err)
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("c2s: dial %s: %w", cfg.Addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })

	c := &Client{
		conn:    conn,
		raw:     conn,
		bare:    bare,
		domain:  domain,
		stanzas: make(chan Stanza, StanzaBuffer),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	c.calls = xmpp.NewCalls[Stanza]("c2s", c.fromMatches)
	sr, err := c.login(ctx, cfg, local, res)
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		conn.Close()
		cause := ctx.Err()
		if cause == nil && errors.Is(err, os.ErrDeadlineExceeded) {
			cause = context.DeadlineExceeded // the socket deadline fired first
		}
		if cause != nil && !errors.Is(err, cause) {
			err = fmt.Errorf("%w (%w)", cause, err)
		}
		return nil, fmt.Errorf("c2s: login %s at %s: %w", bare, cfg.Addr, err)
	}
	_ = conn.SetDeadline(time.Time{})
	go c.readLoop(sr)
	return c, nil
}

// login runs the stream negotiation and returns the reader of the final stream.
func (c *Client) login(ctx context.Context, cfg Config, local, resource string) (*xmpp.Reader, error) {
	password, mech := cfg.Password, cfg.Mechanism
	sr := newReader(c.conn)
	f, err := c.openStream(sr)
	if err != nil {
		return nil, err
	}
	switch {
	case cfg.TLS != nil:
		if f.StartTLS == nil {
			return nil, ErrTLSNotOffered
		}
		if sr, err = c.startTLS(ctx, sr, cfg.TLS); err != nil {
			return nil, err
		}
		if f, err = c.openStream(sr); err != nil {
			return nil, err
		}
	case f.StartTLS != nil && f.StartTLS.Required != nil:
		return nil, ErrTLSRequired
	}
	if f.Mechanisms == nil {
		return nil, errors.New("server offers no SASL mechanisms")
	}
	var offered, cbTypes []string
	for _, m := range f.Mechanisms {
		offered = append(offered, strings.TrimSpace(m))
	}
	for _, cb := range f.ChannelBindings {
		cbTypes = append(cbTypes, cb.Type)
	}
	var cs *tls.ConnectionState
	if tc, ok := c.conn.(*tls.Conn); ok {
		s := tc.ConnectionState()
		cs = &s
	}
	m, err := chooseMechanism(offered, mech, cs, cbTypes)
	if err != nil {
		return nil, err
	}
	neg, err := newNegotiator(m, local, password, offered, cs)
	if err != nil {
		return nil, fmt.Errorf("sasl %s: %w", m.Name, err)
	}
	if err := c.authenticate(sr, m.Name, neg); err != nil {
		return nil, err
	}
	c.mech = m.Name

	sr.Restart() // RFC 6120 §6.4.6
	f, err = c.openStream(sr)
	if err != nil {
		return nil, err
	}
	if f.Bind == nil {
		return nil, errors.New("server offers no resource binding")
	}
	bind := "<bind xmlns='" + xmpp.NSBind + "'/>"
	if resource != "" {
		bind = "<bind xmlns='" + xmpp.NSBind + "'><resource>" + xmltext.Escape(resource) + "</resource></bind>"
	}
	st, err := c.loginIQ(sr, "bind_1", bind)
	if err != nil {
		return nil, fmt.Errorf("bind: %w", err)
	}
	var bound struct {
		JID string `xml:"urn:ietf:params:xml:ns:xmpp-bind bind>jid"`
	}
	if unmarshalInner(st.Inner, &bound) == nil {
		c.jid = strings.TrimSpace(bound.JID)
	}
	if !strings.Contains(c.jid, "/") {
		return nil, fmt.Errorf("bind: no full JID in answer %q", st.Raw)
	}
	sr.Self = c.jid
	if f.Session != nil && f.Session.Optional == nil {
		if _, err := c.loginIQ(sr, "sess_1", "<session xmlns='"+xmpp.NSSession+"'/>"); err != nil {
			return nil, fmt.Errorf("session: %w", err)
		}
	}
	return sr, nil
}

// startTLS asks for TLS, runs the handshake over the TCP connection once
// the server answers <proceed/>, and returns the reader of the encrypted
// connection, on which the caller restarts the stream (RFC 6120 §5.4.3.3).
func (c *Client) startTLS(ctx context.Context, sr *xmpp.Reader, base *tls.Config) (*xmpp.Reader, error) {
	if err := c.write("<starttls xmlns='" + xmpp.NSTLS + "'/>"); err != nil {
		return nil, err
	}
	el, err := c.loginNext(sr)
	if err != nil {
		return nil, fmt.Errorf("starttls: %w", err)
	}
	switch {
	case el.Name.Space == xmpp.NSTLS && el.Name.Local == "proceed":
	case el.Name.Space == xmpp.NSTLS && el.Name.Local == "failure":
		return nil, ErrTLSRefused
	default:
		return nil, fmt.Errorf("starttls: expected <proceed/>, got <%s xmlns='%s'>", el.Name.Local, el.Name.Space)
	}
	// The server must wait for our ClientHello. Bytes already here were
	// sent in the clear after <proceed/>: they must not be read as if they
	// came over TLS (a STARTTLS command injection).
	if n := sr.Buffered(); n > 0 {
		return nil, fmt.Errorf("starttls: server sent %d unencrypted bytes after <proceed/>", n)
	}
	cfg := base.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = c.domain
	}
	tc := tls.Client(c.raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("tls handshake with %s: %w", cfg.ServerName, err)
	}
	c.conn = tc
	return newReader(tc), nil
}

// newReader returns the reader of a stream from the server: it keeps each
// element's text for Stanza.Raw.
func newReader(conn io.Reader) *xmpp.Reader {
	sr := xmpp.NewReader(conn)
	sr.Raw = true
	return sr
}

// openStream sends a stream header and reads the server's header and
// features with sr, which must be new or restarted.
func (c *Client) openStream(sr *xmpp.Reader) (*features, error) {
	hdr := "<?xml version='1.0'?><stream:stream xmlns='" + xmpp.NSClient + "' xmlns:stream='" + xmpp.NSStream +
		"' to='" + xmltext.Escape(c.domain) + "' version='1.0' xml:lang='en'>"
	if err := c.write(hdr); err != nil {
		return nil, err
	}
	if _, err := sr.Header(); err != nil {
		return nil, fmt.Errorf("read stream header: %w", err)
	}
	el, err := c.loginNext(sr)
	if err != nil {
		return nil, err
	}
	if el.Name.Space != xmpp.NSStream || el.Name.Local != "features" {
		return nil, fmt.Errorf("expected stream features, got <%s>", el.Name.Local)
	}
	var f features
	if err := unmarshalInner(el.Inner, &f); err != nil {
		return nil, fmt.Errorf("stream features: %w", err)
	}
	return &f, nil
}

// loginNext reads the next element during login, turning a stream error
// into an error.
func (c *Client) loginNext(sr *xmpp.Reader) (xmpp.Element, error) {
	var el xmpp.Element
	if err := sr.Next(&el); err != nil {
		return xmpp.Element{}, err
	}
	if el.IsStreamError() {
		return xmpp.Element{}, xmpp.ParseStreamError(el.Inner)
	}
	return el, nil
}

// loginIQ sends an IQ set to the server during login and waits for its answer.
func (c *Client) loginIQ(sr *xmpp.Reader, id, payload string) (Stanza, error) {
	if err := c.write("<iq type='set' id='" + id + "'>" + payload + "</iq>"); err != nil {
		return Stanza{}, err
	}
	for {
		el, err := c.loginNext(sr)
		if err != nil {
			return Stanza{}, err
		}
		st := toStanza(&el, 0)
		if st.Name != "iq" || st.ID != id {
			continue
		}
		if st.Type == "error" {
			return st, xmpp.ParseError(st.Inner)
		}
		return st, nil
	}
}

func toStanza(el *xmpp.Element, seq uint64) Stanza {
	return Stanza{
		Name:  el.Name.Local,
		Type:  el.Type,
		From:  el.From,
		To:    el.To,
		ID:    el.ID,
		Inner: el.Inner,
		Raw:   el.Raw,
		Seq:   seq,
	}
}

// readLoop is the one reader of the stream after login.
func (c *Client) readLoop(sr *xmpp.Reader) {
	var seq uint64
	var err error
	var el xmpp.Element
	for {
		if err = sr.Next(&el); err != nil {
			break
		}
		if el.Name.Space == xmpp.NSStream {
			if el.IsStreamError() {
				err = xmpp.ParseStreamError(el.Inner)
				break
			}
			continue
		}
		seq++
		st := toStanza(&el, seq)
		if st.Name == "presence" && st.Type == "subscribe" {
			c.approve(st)
		}
		if st.Name == "iq" {
			switch st.Type {
			case "result", "error":
				// Answers nobody waits for, or from another address than
				// the request went to, are dropped.
				c.calls.Deliver(st.ID, st.From, st, nil)
				continue
			case "get", "set":
				go c.answerIQ(st)
			}
		}
		select {
		case c.stanzas <- st:
		case <-c.quit:
		}
	}
	c.finish(err)
}

// finish ends the session after the reader stopped.
func (c *Client) finish(err error) {
	select {
	case <-c.quit:
		err = nil // we closed it
	default:
		if errors.Is(err, xmpp.ErrStreamEnd) {
			c.wmu.Lock()
			if !c.wclosed.Load() {
				_ = c.conn.SetWriteDeadline(time.Now().Add(closeWait))
				_, _ = io.WriteString(c.conn, "</stream:stream>")
			}
			c.wmu.Unlock()
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
	}
	c.wclosed.Store(true)
	c.err = err
	c.conn.Close()
	c.calls.Close(ErrClosed)
	close(c.stanzas)
	close(c.done)
}

func (c *Client) fromMatches(to, from string) bool {
	if strings.EqualFold(to, from) {
		return true
	}
	self := to == "" || strings.EqualFold(to, c.bare) || strings.EqualFold(to, c.domain) || strings.EqualFold(to, c.jid)
	return self && (from == "" || strings.EqualFold(from, c.bare) || strings.EqualFold(from, c.domain) || strings.EqualFold(from, c.jid))
}

// answerIQ answers a request from the server or a peer: ping and disco#info
// get a result, a roster push is acknowledged, anything else gets
// service-unavailable (RFC 6120 §8.2.3 wants every get/set answered).
func (c *Client) answerIQ(st Stanza) {
	to := ""
	if st.From != "" {
		to = " to='" + xmltext.Escape(st.From) + "'"
	}
	head := "<iq type='result' id='" + xmltext.Escape(st.ID) + "'" + to
	q, ok := xmpp.FirstChild(st.Inner)
	switch {
	case ok && st.Type == "get" && q.Name.Space == xmpp.NSPing && q.Name.Local == "ping":
		_ = c.write(head + "/>")
	case ok && st.Type == "get" && q.Name.Space == xmpp.NSDiscoInfo && q.Name.Local == "query":
		node := ""
		for _, a := range q.Attr {
			if a.Name.Space == "" && a.Name.Local == "node" && a.Value != "" {
				node = " node='" + xmltext.Escape(a.Value) + "'"
			}
		}
		_ = c.write(head + "><query xmlns='" + xmpp.NSDiscoInfo + "'" + node + ">" +
			"<identity category='client' type='bot' name='pubpresence'/>" +
			"<feature var='" + xmpp.NSDiscoInfo + "'/><feature var='" + xmpp.NSPing + "'/></query></iq>")
	case ok && st.Type == "set" && q.Name.Space == xmpp.NSRoster && c.fromMatches("", st.From):
		_ = c.write(head + "/>")
	default:
		_ = c.write("<iq type='error' id='" + xmltext.Escape(st.ID) + "'" + to +
			">" + string(unavailable.AppendXML(nil)) + "</iq>")
	}
}

// unavailable answers the requests the client does not serve.
var unavailable = &xmpp.StanzaError{Type: "cancel", Condition: xmpp.ErrServiceUnavailable}

// write sends raw XML under the writer mutex.
func (c *Client) write(s string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wclosed.Load() {
		return ErrClosed
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := io.WriteString(c.conn, s); err != nil {
		return fmt.Errorf("c2s: write: %w", err)
	}
	return nil
}

// JID returns the full JID the server bound for this session.
func (c *Client) JID() string { return c.jid }

// Mechanism returns the SASL mechanism the client logged in with, such as
// "SCRAM-SHA-256".
func (c *Client) Mechanism() string { return c.mech }

// Bare returns the bare JID of the account.
func (c *Client) Bare() string { return c.bare }

// Send writes raw XML, which must be one or more whole stanzas.
func (c *Client) Send(raw string) error { return c.write(raw) }

// Request sends an IQ of type typ ("get" or "set") to the address to (""
// means the account itself) with payload as its content, and waits for the
// answer, which it returns whole. An answer of type "error" is returned
// with an *xmpp.StanzaError. The id is registered before the IQ is sent.
func (c *Client) Request(ctx context.Context, typ, to, payload string) (Stanza, error) {
	if err := ctx.Err(); err != nil { // the caller gave up already: send nothing
		return Stanza{}, fmt.Errorf("c2s: iq %s to %q: %w", typ, to, err)
	}
	call, err := c.calls.Start(to)
	if err != nil {
		return Stanza{}, fmt.Errorf("c2s: iq %s to %q: %w", typ, to, err)
	}
	attrTo := ""
	if to != "" {
		attrTo = " to='" + xmltext.Escape(to) + "'"
	}
	if err := c.write("<iq type='" + xmltext.Escape(typ) + "' id='" + call.ID() + "'" + attrTo + ">" + payload + "</iq>"); err != nil {
		call.Abandon()
		return Stanza{}, err
	}
	st, err := call.Wait(ctx)
	if err != nil {
		// ctx's error, or ErrClosed from finish.
		return Stanza{}, fmt.Errorf("c2s: iq %s to %q: %w", typ, to, err)
	}
	if st.Type == "error" {
		return st, xmpp.ParseError(st.Inner)
	}
	return st, nil
}

// IQ is Request returning only the answer's inner XML; with it a Client is
// a pubsub.IQer.
func (c *Client) IQ(ctx context.Context, typ, to string, payload []byte) ([]byte, error) {
	st, err := c.Request(ctx, typ, to, string(payload))
	if err != nil {
		return nil, err
	}
	return st.Inner, nil
}

// Presence sends available presence: show is "" (plain available), "chat",
// "away", "xa" or "dnd"; status and priority are left out when empty / 0.
func (c *Client) Presence(show, status string, priority int) error {
	var b strings.Builder
	b.WriteString("<presence>")
	if show != "" {
		b.WriteString("<show>" + xmltext.Escape(show) + "</show>")
	}
	if status != "" {
		b.WriteString("<status>" + xmltext.Escape(status) + "</status>")
	}
	if priority != 0 {
		b.WriteString("<priority>" + strconv.Itoa(priority) + "</priority>")
	}
	b.WriteString("</presence>")
	return c.write(b.String())
}

// ApproveAndSubscribe pre-approves a subscription from to and asks for one
// to it (RFC 6121 §3.4): once to sends its own subscribe, the server accepts
// it without asking, and both sides end with subscription "both". A server
// without pre-approval (ejabberd 23.01) passes to's subscribe request on
// instead; the client then approves it at once, as a user who has just
// added to would. The request is still delivered on Stanzas.
func (c *Client) ApproveAndSubscribe(to string) error {
	c.mu.Lock()
	if c.approved == nil {
		c.approved = make(map[string]bool)
	}
	c.approved[bareKey(to)] = true
	c.mu.Unlock()
	t := xmltext.Escape(to)
	return c.write("<presence type='subscribed' to='" + t + "'/><presence type='subscribe' to='" + t + "'/>")
}

// approve answers a subscription request from a JID given to
// ApproveAndSubscribe.
func (c *Client) approve(st Stanza) {
	from := bareKey(st.From)
	c.mu.Lock()
	ok := c.approved[from]
	c.mu.Unlock()
	if ok {
		go func() { _ = c.write("<presence type='subscribed' to='" + xmltext.Escape(from) + "'/>") }()
	}
}

// bareKey is the bare JID of jid, normalised, or jid when it does not parse.
func bareKey(jid string) string {
	if b, err := xmpp.NormalBare(jid); err == nil {
		return b
	}
	return jid
}

// Stanzas returns the channel of inbound stanzas: messages, presences and
// IQ requests (which the client has already answered: a result for ping and
// disco#info and roster pushes, service-unavailable for the rest), in stream
// order. IQ answers go to their Request instead. It is closed when the
// reader ends. See Client about its buffer.
func (c *Client) Stanzas() <-chan Stanza { return c.stanzas }

// Done is closed when the reader has ended and the connection is closed.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the session ended once Done is closed: nil after Close or
// Abort, an *xmpp.StreamError, or a read error. Before that it returns nil.
func (c *Client) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Close ends the session politely: unavailable presence and
// </stream:stream>, then it waits up to two seconds for the server to close
// its side before closing the connection. Further calls do nothing.
func (c *Client) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.quit)
		c.wmu.Lock()
		if !c.wclosed.Load() {
			_ = c.conn.SetWriteDeadline(time.Now().Add(closeWait))
			_, err = io.WriteString(c.conn, "<presence type='unavailable'/></stream:stream>")
			c.wclosed.Store(true)
		}
		c.wmu.Unlock()
		t := time.NewTimer(closeWait)
		select {
		case <-c.done:
		case <-t.C:
		}
		t.Stop()
		c.conn.Close()
		<-c.done
	})
	if err != nil {
		return fmt.Errorf("c2s: close: %w", err)
	}
	return nil
}

// Abort closes the TCP connection at once, with no unavailable presence,
// no stream close and no TLS close_notify, as a crashed client would.
// Further calls do nothing.
func (c *Client) Abort() error {
	c.closeOnce.Do(func() {
		close(c.quit)
		c.wclosed.Store(true)
		c.raw.Close()
		<-c.done
	})
	return nil
}
