package component_test

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/internal/xmpp"
	"github.com/pubpresence/pubpresence/internal/xmpptest"
)

// dial connects to srv and returns both ends of the authenticated stream.
func dial(t *testing.T, srv *xmpptest.Server, edit ...func(*component.Config)) (*component.Conn, *xmpptest.Conn) {
	t.Helper()
	cfg := config(srv)
	for _, f := range edit {
		f(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := component.Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, srv.Conn(t)
}

// recv returns the next stanza on c.Inbound().
func recv(t *testing.T, c *component.Conn) component.Stanza {
	t.Helper()
	select {
	case s := <-c.Inbound():
		return s
	case <-c.Done():
		t.Fatalf("stream ended while waiting for a stanza: %v", c.Err())
	case <-time.After(wait):
		t.Fatal("no stanza on Inbound")
	}
	return component.Stanza{}
}

// waitDone waits for the Conn to end and returns Err().
func waitDone(t *testing.T, c *component.Conn) error {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(wait):
		t.Fatal("the Conn did not end")
	}
	err := c.Err()
	if err == nil {
		t.Fatal("Done is closed but Err() is nil")
	}
	return err
}

type iqResult struct {
	inner []byte
	err   error
}

// goIQ runs c.IQ in a goroutine.
func goIQ(ctx context.Context, c *component.Conn, typ, to, payload string) <-chan iqResult {
	ch := make(chan iqResult, 1)
	go func() {
		inner, err := c.IQ(ctx, typ, to, []byte(payload))
		ch <- iqResult{inner, err}
	}()
	return ch
}

func waitIQ(t *testing.T, ch <-chan iqResult) iqResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(wait):
		t.Fatal("IQ did not return")
		return iqResult{}
	}
}

func TestDial(t *testing.T) {
	srv := newFakeServer(t)
	c, sc := dial(t, srv)
	if got := c.Name(); got != compName {
		t.Errorf("Name() = %q, want %q", got, compName)
	}
	if err := c.Err(); err != nil {
		t.Errorf("Err() = %v on a fresh stream", err)
	}
	select {
	case <-c.Done():
		t.Fatal("Done closed on a fresh stream")
	default:
	}
	hdr := srv.Headers()
	if len(hdr) != 1 || hdr[0]["to"] != compName {
		t.Errorf("stream headers = %v, want one with to=%q", hdr, compName)
	}
	// The stream works both ways after the handshake.
	if err := sc.Write("<presence from='bob@localhost/r' to='" + compName + "'/>"); err != nil {
		t.Fatal(err)
	}
	if s := recv(t, c); s.Name != "presence" || s.From != "bob@localhost/r" {
		t.Errorf("got %+v", s)
	}
	if err := c.SendPresence(context.Background(), "bob@localhost", "", "", ""); err != nil {
		t.Fatal(err)
	}
	sc.Expect(t, func(e *xmpptest.Element) error {
		if e.Name().Local != "presence" || e.Attr("to") != "bob@localhost" {
			return errors.New("want the presence to bob")
		}
		return nil
	})
}

// A server may send stanzas in the same packet as <handshake/> (Prosody's
// mod_privilege does): they must not be lost between handshake and reader.
func TestDialKeepsStanzasSentWithHandshake(t *testing.T) {
	srv := newFakeServerWith(t, xmpptest.Config{AfterHandshake: "<message from='localhost' to='" + compName +
		"'><privilege xmlns='urn:xmpp:privilege:2'/></message><presence from='bob@localhost/r1' to='" + compName + "'/>"})
	c, _ := dial(t, srv)
	if s := recv(t, c); s.Name != "message" || s.From != "localhost" {
		t.Errorf("first stanza = %+v, want the message from localhost", s)
	}
	if s := recv(t, c); s.Name != "presence" || s.From != "bob@localhost/r1" {
		t.Errorf("second stanza = %+v, want the presence from bob", s)
	}
}

func TestDialRejected(t *testing.T) {
	tests := []struct {
		name     string
		mode     xmpptest.Mode
		edit     func(*component.Config)
		wantCond xmpp.StreamCondition
		wantText string
	}{
		{"wrong secret", xmpptest.ModeOK, func(c *component.Config) { c.Secret = "wrong" },
			xmpp.ErrStreamNotAuthorized, "Given token does not match calculated token"},
		{"name in use", xmpptest.ModeConflict, nil,
			xmpp.ErrStreamConflict, "Component already connected"},
		{"unknown name", xmpptest.ModeOK, func(c *component.Config) { c.Name = "nosuch.localhost" },
			xmpp.ErrStreamHostUnknown, "nosuch.localhost does not match any configured external components"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFakeServerWith(t, xmpptest.Config{Mode: tt.mode})
			cfg := config(srv)
			if tt.edit != nil {
				tt.edit(&cfg)
			}
			c, err := component.Dial(context.Background(), cfg)
			if err == nil {
				_ = c.Close()
				t.Fatal("Dial succeeded")
			}
			if c != nil {
				t.Errorf("Dial returned a Conn with error %v", err)
			}
			var se *component.StreamError
			if !errors.As(err, &se) {
				t.Fatalf("Dial error %v (%T) is not a *StreamError", err, err)
			}
			if !errors.Is(err, tt.wantCond) || se.Text != tt.wantText {
				t.Errorf("StreamError = {%q, %q}, want {%q, %q}", se.Condition, se.Text, tt.wantCond, tt.wantText)
			}
			if srv.Authenticated() != 0 {
				t.Errorf("the server authenticated %d connections", srv.Authenticated())
			}
		})
	}
}

func TestDialTimeout(t *testing.T) {
	for _, tt := range []struct {
		name string
		mode xmpptest.Mode
	}{
		{"no stream header", xmpptest.ModeNoHeader},
		{"no handshake answer", xmpptest.ModeNoHandshakeAnswer},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newFakeServerWith(t, xmpptest.Config{Mode: tt.mode})
			cfg := config(srv)
			cfg.DialTimeout = 200 * time.Millisecond
			errc := make(chan error, 1)
			go func() {
				c, err := component.Dial(context.Background(), cfg)
				if c != nil {
					_ = c.Close()
				}
				errc <- err
			}()
			var err error
			select {
			case err = <-errc:
			case <-time.After(wait):
				t.Fatal("Dial did not return after its DialTimeout")
			}
			if err == nil {
				t.Fatal("Dial succeeded")
			}
			if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "deadline") {
				t.Errorf("Dial error = %q, want one that wraps context.DeadlineExceeded", err)
			}
			if srv.Accepted() != 1 {
				t.Errorf("server accepted %d connections, want 1", srv.Accepted())
			}
		})
	}
}

func TestDialCancelled(t *testing.T) {
	srv := newFakeServerWith(t, xmpptest.Config{Mode: xmpptest.ModeNoHandshakeAnswer})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	errc := make(chan error, 1)
	go func() {
		c, err := component.Dial(ctx, config(srv)) // DialTimeout: wait
		if c != nil {
			_ = c.Close()
		}
		errc <- err
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Dial error = %v, want context.Canceled", err)
		}
	case <-time.After(wait):
		t.Fatal("Dial ignored its ctx")
	}
}

func TestStanzasCarryFrom(t *testing.T) {
	srv := newFakeServerWith(t, xmpptest.Config{Handler: xmpptest.AnswerAll})
	c, sc := dial(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	if _, err := c.IQ(ctx, "get", "pubsub.localhost", []byte("<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='n'/></pubsub>")); err != nil {
		t.Fatalf("IQ: %v", err)
	}
	if err := c.SendPresence(ctx, "bob@localhost", "", "dnd", "a<b & 'c' \"d\""); err != nil {
		t.Fatal(err)
	}
	if err := c.SendPresence(ctx, "bob@localhost/it's <me> & \"you\"", "unavailable", "", ""); err != nil {
		t.Fatal(err)
	}
	// Requests the Conn answers itself (AnswerAll leaves their answers queued).
	_ = sc.Write("<iq type='get' id='a1' from='localhost' to='" + compName + "'><ping xmlns='urn:xmpp:ping'/></iq>" +
		"<iq type='get' id='a2' from='bob@localhost/r' to='" + compName + "'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>" +
		"<iq type='set' id='a3' from='bob@localhost/r' to='" + compName + "'><query xmlns='jabber:iq:roster'/></iq>")
	for i := 0; i < 3; i++ {
		sc.Next(t)
	}
	// Keepalive pings too.
	c2, sc2 := dial(t, newFakeServerWith(t, xmpptest.Config{Handler: xmpptest.AnswerPings}), func(cfg *component.Config) {
		cfg.KeepaliveInterval = 20 * time.Millisecond
		cfg.PingTo = "localhost"
	})
	eventually(t, "a keepalive ping", func() bool { return len(sc2.Log()) > 0 })
	_ = c2

	log := append(sc.Log(), sc2.Log()[0])
	if len(log) != 7 {
		t.Fatalf("server read %d elements, want 7", len(log))
	}
	for _, e := range log {
		if e.Attr("from") != compName {
			t.Errorf("<%s id=%q> has from=%q, want %q", e.Name().Local, e.Attr("id"), e.Attr("from"), compName)
		}
		if e.Name().Space != xmpp.NSComponent {
			t.Errorf("<%s> in namespace %q, want %q", e.Name().Local, e.Name().Space, xmpp.NSComponent)
		}
	}
	// The presence's text survived escaping.
	var p struct {
		Show   string `xml:"show"`
		Status string `xml:"status"`
	}
	if err := xml.Unmarshal([]byte("<p>"+string(log[1].Inner)+"</p>"), &p); err != nil {
		t.Fatal(err)
	}
	if p.Show != "dnd" || p.Status != "a<b & 'c' \"d\"" {
		t.Errorf("presence show=%q status=%q", p.Show, p.Status)
	}
	if log[2].Attr("type") != "unavailable" || log[2].Attr("to") != "bob@localhost/it's <me> & \"you\"" || len(log[2].Inner) != 0 {
		t.Errorf("unavailable presence = %v %q", log[2].Attrs(), log[2].Inner)
	}
}

func TestIQResultSentAtOnce(t *testing.T) {
	const inner = "<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='presence/live'><item id='alice@localhost/laptop'/></publish></pubsub>"
	srv := newFakeServerWith(t, xmpptest.Config{Handler: func(sc *xmpptest.Conn, e *xmpptest.Element) bool {
		// Answer in the reader, before anything else is read.
		_ = sc.Write(xmpptest.IQAnswer(e, "result", inner))
		return true
	}})
	c, sc := dial(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for i := 0; i < 50; i++ {
		got, err := c.IQ(ctx, "set", "pubsub.localhost", []byte("<pubsub xmlns='http://jabber.org/protocol/pubsub'/>"))
		if err != nil {
			t.Fatalf("IQ %d: %v", i, err)
		}
		if string(got) != inner {
			t.Fatalf("IQ %d = %q, want %q", i, got, inner)
		}
	}
	// Start, and let the answer arrive before Wait is called.
	call, err := c.Start(ctx, "get", "pubsub.localhost", nil)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the answer to be read", func() bool { return c.Stats().Received == 51 })
	if got, err := call.Wait(ctx); err != nil || string(got) != inner {
		t.Errorf("Wait = %q, %v", got, err)
	}
	if n := len(sc.Log()); n != 51 {
		t.Errorf("server read %d requests, want 51", n)
	}
	if s := c.Stats(); s.UnknownResults != 0 {
		t.Errorf("Stats = %+v, want no unknown results", s)
	}
}

func TestIQErrorAnswer(t *testing.T) {
	const st = " xmlns='" + xmpp.NSStanzas + "'"
	tests := []struct {
		name  string
		inner string
		want  component.StanzaError
	}{
		{"pubsub precondition",
			"<error type='cancel'><conflict" + st + "/><text" + st + ">Field does not match: max_items</text>" +
				"<precondition-not-met xmlns='http://jabber.org/protocol/pubsub#errors'/></error>",
			component.StanzaError{Type: "cancel", Condition: xmpp.ErrConflict, App: "precondition-not-met", Text: "Field does not match: max_items"}},
		{"plain condition",
			"<error type='auth'><forbidden" + st + "/></error>",
			component.StanzaError{Type: "auth", Condition: xmpp.ErrForbidden}},
		{"request echoed before the error",
			"<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='n'><item/></publish></pubsub>" +
				"<error type='modify'><bad-request" + st + "/><text" + st + " xml:lang='en'>invalid item</text></error>",
			component.StanzaError{Type: "modify", Condition: xmpp.ErrBadRequest, Text: "invalid item"}},
		{"component unavailable (Prosody bounce)",
			"<error type='wait'><remote-server-timeout" + st + "/><text" + st + ">Component unavailable</text>" +
				"<not-connected xmlns='xmpp:prosody.im/protocol/component'/></error>",
			component.StanzaError{Type: "wait", Condition: xmpp.ErrRemoteServerTimeout, App: "not-connected", Text: "Component unavailable"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFakeServerWith(t, xmpptest.Config{Handler: func(sc *xmpptest.Conn, e *xmpptest.Element) bool {
				_ = sc.Write(xmpptest.IQAnswer(e, "error", tt.inner))
				return true
			}})
			c, _ := dial(t, srv)
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			got, err := c.IQ(ctx, "set", "pubsub.localhost", []byte("<pubsub xmlns='http://jabber.org/protocol/pubsub'/>"))
			var se *component.StanzaError
			if !errors.As(err, &se) {
				t.Fatalf("IQ = %q, %v (%T), want a *StanzaError", got, err, err)
			}
			if *se != tt.want {
				t.Errorf("StanzaError = %+v, want %+v", *se, tt.want)
			}
			if !errors.Is(err, tt.want.Condition) {
				t.Errorf("errors.Is(%v, %q) = false", err, tt.want.Condition)
			}
			if c.Err() != nil {
				t.Errorf("an error answer ended the stream: %v", c.Err())
			}
		})
	}
}

func TestIQMatchedByIDAndFrom(t *testing.T) {
	srv := newFakeServer(t)
	c, sc := dial(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	res := goIQ(ctx, c, "get", "pubsub.localhost", "<pubsub xmlns='http://jabber.org/protocol/pubsub'/>")
	req := sc.Next(t)
	id := req.Attr("id")
	if id == "" {
		t.Fatal("request without id")
	}

	// The right id from someone else, then with no from at all.
	for i, from := range []string{"evil.localhost", ""} {
		fromAttr := ""
		if from != "" {
			fromAttr = " from='" + from + "'"
		}
		_ = sc.Write("<iq type='result' id='" + id + "'" + fromAttr + " to='" + compName + "'><fake/></iq>")
		want := uint64(i + 1)
		eventually(t, "the answer to be counted as unknown", func() bool { return c.Stats().UnknownResults == want })
		select {
		case r := <-res:
			t.Fatalf("an answer from %q was delivered to a request to pubsub.localhost: %q, %v", from, r.inner, r.err)
		default:
		}
	}
	// An answer with another id from the right JID.
	_ = sc.Write("<iq type='result' id='" + id + "x' from='pubsub.localhost' to='" + compName + "'><fake/></iq>")
	eventually(t, "the answer to be counted as unknown", func() bool { return c.Stats().UnknownResults == 3 })

	_ = sc.Write(xmpptest.IQAnswer(req, "result", "<real/>"))
	r := waitIQ(t, res)
	if r.err != nil || string(r.inner) != "<real/>" {
		t.Errorf("IQ = %q, %v, want <real/>", r.inner, r.err)
	}
	if c.Stats().UnknownResults != 3 {
		t.Errorf("UnknownResults = %d, want 3", c.Stats().UnknownResults)
	}
}

func TestIQContextExpires(t *testing.T) {
	srv := newFakeServer(t)
	c, sc := dial(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.IQ(ctx, "get", "pubsub.localhost", []byte("<q xmlns='urn:test'/>"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("IQ error = %v, want context.DeadlineExceeded", err)
	}
	req := sc.Next(t)

	// The late answer must not block the reader: what follows still arrives.
	_ = sc.Write(xmpptest.IQAnswer(req, "result", "<late/>") + "<presence from='bob@localhost/r' to='" + compName + "'/>")
	if s := recv(t, c); s.Name != "presence" || s.From != "bob@localhost/r" {
		t.Errorf("got %+v, want the presence", s)
	}
	if n := c.Stats().UnknownResults; n != 1 {
		t.Errorf("UnknownResults = %d, want 1", n)
	}
	// And the Conn still does round trips.
	sc.SetHandler(xmpptest.AnswerAll)
	ctx2, cancel2 := context.WithTimeout(context.Background(), wait)
	defer cancel2()
	if _, err := c.IQ(ctx2, "get", "pubsub.localhost", nil); err != nil {
		t.Errorf("IQ after a timed-out one: %v", err)
	}
}

func TestStartWaitOrder(t *testing.T) {
	const n = 100
	srv := newFakeServer(t)
	c, sc := dial(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	calls := make([]*component.Call, n)
	for i := range calls {
		call, err := c.Start(ctx, "get", "localhost", []byte(fmt.Sprintf("<q xmlns='urn:test' n='%d'/>", i)))
		if err != nil {
			t.Fatalf("Start %d: %v", i, err)
		}
		calls[i] = call
	}
	reqs := make([]*xmpptest.Element, n)
	ids := map[string]bool{}
	for i := range reqs {
		reqs[i] = sc.Next(t)
		if want := fmt.Sprintf("<q xmlns='urn:test' n='%d'/>", i); string(reqs[i].Inner) != want {
			t.Fatalf("request %d on the wire is %q, want %q", i, reqs[i].Inner, want)
		}
		if ids[reqs[i].Attr("id")] {
			t.Fatalf("id %q used twice", reqs[i].Attr("id"))
		}
		ids[reqs[i].Attr("id")] = true
	}
	// Answer out of order: odd ones backwards, then even ones forwards.
	var order []int
	for i := n - 1; i >= 0; i-- {
		if i%2 == 1 {
			order = append(order, i)
		}
	}
	for i := 0; i < n; i += 2 {
		order = append(order, i)
	}
	var b strings.Builder
	for _, i := range order {
		b.WriteString(xmpptest.IQAnswer(reqs[i], "result", fmt.Sprintf("<a xmlns='urn:test' n='%d'/>", i)))
	}
	_ = sc.Write(b.String())
	for i, call := range calls {
		got, err := call.Wait(ctx)
		if want := fmt.Sprintf("<a xmlns='urn:test' n='%d'/>", i); err != nil || string(got) != want {
			t.Errorf("Wait %d = %q, %v, want %q", i, got, err, want)
		}
	}
}

func TestInbound(t *testing.T) {
	srv := newFakeServer(t)
	c, sc := dial(t, srv)
	to := " to='" + compName + "'"
	stream := " \n\t " +
		"<presence from='bob@localhost/r1'" + to + " id='p1' xml:lang='en'><show>away</show><status>out</status><priority>5</priority></presence>" +
		"   " +
		"<message from='carol@localhost/x'" + to + " type='chat' id='m1'><body>hi &amp; bye</body></message>\n" +
		"<presence from='bob@localhost/r2'" + to + "><priority>999</priority></presence>" +
		"<presence from='bob@localhost/r3'" + to + "><show>bogus</show><priority>abc</priority></presence>" +
		"<presence from='bob@localhost/r4'" + to + "><x xmlns='urn:example:unknown'><status code='110'/><deep><error/></deep></x></presence>" +
		"<presence from='bob@localhost/r5'" + to + " type='unavailable'><status>Disconnected: Received SIGTERM</status></presence>" +
		" " +
		"<presence from='bob@localhost/r6'" + to + "><delay xmlns='urn:xmpp:delay' from='localhost' stamp='2026-01-02T03:04:05Z'/></presence>" +
		"<iq type='bogus' id='weird' from='localhost'" + to + "/>" + // not an IQ type: ignored
		"<presence from='bob@localhost/r7'" + to + " type='probe'/>"
	want := []component.Stanza{
		{Name: "presence", ID: "p1", From: "bob@localhost/r1", To: compName, Inner: []byte("<show>away</show><status>out</status><priority>5</priority>")},
		{Name: "message", ID: "m1", Type: "chat", From: "carol@localhost/x", To: compName, Inner: []byte("<body>hi &amp; bye</body>")},
		{Name: "presence", From: "bob@localhost/r2", To: compName, Inner: []byte("<priority>999</priority>")},
		{Name: "presence", From: "bob@localhost/r3", To: compName, Inner: []byte("<show>bogus</show><priority>abc</priority>")},
		{Name: "presence", From: "bob@localhost/r4", To: compName, Inner: []byte("<x xmlns='urn:example:unknown'><status code='110'/><deep><error/></deep></x>")},
		{Name: "presence", Type: "unavailable", From: "bob@localhost/r5", To: compName, Inner: []byte("<status>Disconnected: Received SIGTERM</status>")},
		{Name: "presence", From: "bob@localhost/r6", To: compName, Inner: []byte("<delay xmlns='urn:xmpp:delay' from='localhost' stamp='2026-01-02T03:04:05Z'/>")},
		{Name: "presence", Type: "probe", From: "bob@localhost/r7", To: compName, Inner: []byte{}},
	}
	// Write it in pieces cut at odd places, as TCP may deliver it.
	for _, cut := range [][2]int{{0, 7}, {7, 150}, {150, 151}, {151, 400}, {400, len(stream)}} {
		if err := sc.Write(stream[cut[0]:cut[1]]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	for i, w := range want {
		got := recv(t, c)
		if got.Name != w.Name || got.ID != w.ID || got.Type != w.Type || got.From != w.From || got.To != w.To ||
			string(got.Inner) != string(w.Inner) {
			t.Errorf("stanza %d = %+v (inner %q)\nwant %+v (inner %q)", i, got, got.Inner, w, w.Inner)
		}
	}
	if err := c.Err(); err != nil {
		t.Fatalf("stream ended: %v", err)
	}
	if s := c.Stats(); s.Received != uint64(len(want)+1) {
		t.Errorf("Stats().Received = %d, want %d", s.Received, len(want)+1)
	}
	select {
	case s := <-c.Inbound():
		t.Errorf("unexpected stanza %+v", s)
	default:
	}
}

func TestAnswersIQRequests(t *testing.T) {
	srv := newFakeServer(t)
	c, sc := dial(t, srv)
	to := " to='" + compName + "'"
	_ = sc.Write(
		"<iq type='get' id='ping1' from='localhost'" + to + "><ping xmlns='urn:xmpp:ping'/></iq>" +
			"<iq type='get' id='disco1' from='bob@localhost/r'" + to + "><query xmlns='http://jabber.org/protocol/disco#info'/></iq>" +
			"<iq type='get' id='items1' from='bob@localhost/r'" + to + "><query xmlns='http://jabber.org/protocol/disco#items'/></iq>" +
			"<iq type='set' id='set1' from='bob@localhost/r'" + to + "><ping xmlns='urn:xmpp:ping'/></iq>" +
			"<iq type='get' id='ver1' from='bob@localhost/r'" + to + "><query xmlns='jabber:iq:version'/></iq>" +
			"<iq type='set' id='empty1' from='bob@localhost/r'" + to + "/>" +
			"<presence from='marker@localhost/m'" + to + "/>")

	check := func(id, typ, from string) *xmpptest.Element {
		t.Helper()
		return sc.Expect(t, func(e *xmpptest.Element) error {
			switch {
			case e.Name().Local != "iq":
				return errors.New("not an iq")
			case e.Attr("id") != id || e.Attr("type") != typ:
				return fmt.Errorf("want id=%q type=%q", id, typ)
			case e.Attr("from") != compName || e.Attr("to") != from:
				return fmt.Errorf("want from=%q to=%q", compName, from)
			}
			return nil
		})
	}
	if e := check("ping1", "result", "localhost"); len(e.Inner) != 0 {
		t.Errorf("ping result has content %q", e.Inner)
	}

	e := check("disco1", "result", "bob@localhost/r")
	var q struct {
		XMLName  xml.Name `xml:"http://jabber.org/protocol/disco#info query"`
		Identity []struct {
			Category string `xml:"category,attr"`
			Type     string `xml:"type,attr"`
		} `xml:"identity"`
		Feature []struct {
			Var string `xml:"var,attr"`
		} `xml:"feature"`
	}
	if err := xml.Unmarshal(e.Inner, &q); err != nil {
		t.Fatalf("disco#info result %q: %v", e.Inner, err)
	}
	if len(q.Identity) == 0 || q.Identity[0].Category != "component" {
		t.Errorf("disco#info identities = %+v, want a component", q.Identity)
	}
	features := map[string]bool{}
	for _, f := range q.Feature {
		features[f.Var] = true
	}
	if !features["urn:xmpp:ping"] || !features["http://jabber.org/protocol/disco#info"] {
		t.Errorf("disco#info features = %v", features)
	}

	for _, id := range []string{"items1", "set1", "ver1", "empty1"} {
		e := check(id, "error", "bob@localhost/r")
		var x struct {
			Error struct {
				Type string `xml:"type,attr"`
				Cond struct {
					XMLName xml.Name
				} `xml:",any"`
			} `xml:"error"`
		}
		if err := xml.Unmarshal([]byte("<r>"+string(e.Inner)+"</r>"), &x); err != nil {
			t.Fatalf("error answer %q: %v", e.Inner, err)
		}
		if x.Error.Type != "cancel" || x.Error.Cond.XMLName != (xml.Name{Space: xmpp.NSStanzas, Local: "service-unavailable"}) {
			t.Errorf("answer to %s = %q, want a cancel/service-unavailable error", id, e.Inner)
		}
	}
	// None of the requests reached Inbound: the marker comes first.
	if s := recv(t, c); s.Name != "presence" || s.From != "marker@localhost/m" {
		t.Errorf("Inbound got %+v, want only the marker presence", s)
	}
	if s := c.Stats(); s.UnknownResults != 0 || s.Dropped != 0 {
		t.Errorf("Stats = %+v", s)
	}
}
