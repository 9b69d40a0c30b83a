package service

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pubpresence/pubpresence/config"
	"github.com/pubpresence/pubpresence/internal/xmpptest"
	"github.com/pubpresence/pubpresence/metrics"
	"github.com/pubpresence/pubpresence/nodes"
	"github.com/pubpresence/pubpresence/presence"
	"github.com/pubpresence/pubpresence/status"
)

// The fake XEP-0114 server of the service's benchmarks and quick tests of
// the whole service: internal/xmpptest's server, which answers the stream
// open and handshake like Prosody 0.12, with a handler that answers just
// enough (as captured from a real Prosody) to take the service through its
// life cycle to online, and then injects presence of users.
//
// It is built to stay out of the profile: the server hands the handler
// views of the component's elements (Config.Views: no encoding/xml, no
// copies), the handler answers from pre-encoded parts appended to the
// connection's Out, which the server writes once per read, and it keeps no
// state per user: a user's user-stats answer is computed from its name, and
// so is everything about the users online before the service connects
// (sessions). In the steady state it allocates nothing. Answers that grow
// with the users online (the session list, the actual node's items) are
// written in chunks as they are made, not built whole.
//
// Answers, all as soon as the request is read:
//
//   - ping, pubsub create/configure set/affiliations/items, retract and
//     publish: an empty result (items: no items; affiliations: none); a
//     second create of a node: conflict, as a real server answers;
//   - pubsub configure get: Prosody's form, with pubsub#title and a
//     pubsub#max_items range up to fakeMaxItems;
//   - get-online-users-list (the one-shot form with details): completed,
//     with an empty list, or with Prosody's details of fakeServer.sessions
//     users online;
//   - a probe of an online user: the presence of each of its sessions;
//   - pubsub items of the actual node: none, or what fakeServer.items says;
//   - user-stats for uNNNNNN@localhost: completed, Prosody's fields, one
//     session per resource in fakeServer.resources, each with the IP
//     10.a.b.c made of the user's number NNNNNN (10.255.255.255 for any
//     other name).
//
// It counts publishes per node (live, actual, status), retracts, the
// status publishes carrying online, and the publishes on the actual node
// of items whose id starts with "sentinel@".

const (
	fakeDomain    = "localhost"
	fakeComponent = "pubpresence.localhost"
	fakeSecret    = "s3cret"
	fakeMaxItems  = 1 << 20
	// fakeWait bounds every wait for the service: a guard against hanging,
	// not a speed assertion.
	fakeWait = 2 * time.Minute
)

// Pre-encoded parts of what the fake reads and writes.
const (
	fakePublishPrefix = "<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='"
	fakeRetractPrefix = "<pubsub xmlns='http://jabber.org/protocol/pubsub'><retract node='"
	fakeCreatePrefix  = "<pubsub xmlns='http://jabber.org/protocol/pubsub'><create node='"
	fakePurgePrefix   = "<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><purge node='"
	fakeCommandsNS    = "http://jabber.org/protocol/commands"
	fakeAdminNS       = "http://jabber.org/protocol/admin"
	fakeAccountField  = "<field var='accountjid'><value>"

	fakeListAnswer = fakeListOpen + "/></x></command>"
	fakeListOpen   = "<command xmlns='" + fakeCommandsNS + "' sessionid='fake-list' status='completed' node='" +
		fakeAdminNS + "#get-online-users-list'><x xmlns='jabber:x:data' type='result'>" +
		"<field type='hidden' var='FORM_TYPE'><value>" + fakeAdminNS + "</value></field>" +
		"<field type='text-multi' var='onlineuserjids' label='The list of all online users'"
	fakeListClose   = "</field></x></command>"
	fakeItemsPrefix = "<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='"
	fakeOnlineShow  = "away" // the show of every session online before the service connects
	fakeStaleRes    = "stale"
	fakeChunk       = 64 << 10 // what a large answer is written in
	fakeStatsOpen   = "<command xmlns='" + fakeCommandsNS + "' sessionid='fake-stats' status='completed' node='" +
		fakeAdminNS + "#user-stats'><x xmlns='jabber:x:data' type='result'>" +
		"<field type='hidden' var='FORM_TYPE'><value>" + fakeAdminNS + "</value></field>" +
		"<field type='text-multi' var='ipaddresses' label='IP Addresses'>"
	fakeStatsMiddle = "</field><field type='text-single' var='rostersize' label='Roster size'><value>1</value></field>" +
		"<field type='text-multi' var='onlineresources' label='Online Resources'>"
	fakeStatsClose = "</field></x></command>"
	fakeFormOpen   = "<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='"
	fakeFormFields = "'><x xmlns='jabber:x:data' type='form'>" +
		"<field type='hidden' var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#node_config</value></field>" +
		"<field type='text-single' var='pubsub#title' label='Title'><value>"
	fakeFormClose = "</value></field><field type='text-single' var='pubsub#max_items' label='Max # of items to persist'>" +
		"<validate xmlns='http://jabber.org/protocol/xdata-validate' datatype='pubsub:integer-or-max'>" +
		"<range min='1' max='" + "1048576" + "'/></validate><value>max</value></field></x></configure></pubsub>"
)

// fakeServer is the fake. Its counters may be read from any goroutine;
// inject, flush and the waits are for one goroutine (the benchmark's).
type fakeServer struct {
	tb        testing.TB
	srv       *xmpptest.Server
	nodes     config.Nodes
	titles    map[string]string // node → the title ensureNodes gives it
	resources []string          // every user's online resources, for user-stats

	conn *xmpptest.Conn // the authenticated connection, once flush needs it
	inj  []byte         // presence injected and not yet written
	tick *time.Ticker

	counted  bool          // in the serve loop: the answers not yet written counted something
	progress chan struct{} // cap 1: something was counted and answered

	// Counters of requests answered.
	live, actual, statusPub, retracts, online, sentinel atomic.Int64
	userStats, lists, pings, others                     atomic.Int64
	// failStats is how many user-stats requests, from now, are answered
	// with internal-server-error.
	failStats atomic.Int64
	// failConfigure is how many node configurations (owner configure
	// set), from now, are answered with ejabberd's wait/internal-server-
	// error ("Database failure" while a cluster node dies); configured
	// counts those answered with success.
	failConfigure, configured atomic.Int64
	// purges counts the purges of the actual node answered with success;
	// purgedAfter is how many actual publishes had been answered before the
	// last one. failPurge is how many purges, from now, are answered with
	// feature-not-implemented.
	purges, purgedAfter, failPurge atomic.Int64

	// grant, when set before the service connects, is the inner XML of a
	// <privilege/> message sent on each connection with the answer to its
	// first ping.
	grant   string
	granted atomic.Pointer[xmpptest.Conn] // the last connection sent the grant
	// burst, with grant, is how many users' presence (u000000 …, resource
	// "r", show away) is sent with the grant, before the first ping's
	// answer: Prosody's presence of every session after the handshake.
	burst int
	// presences counts the presence stanzas the component sent; probes
	// those of type probe.
	presences, probes atomic.Int64

	// sessions, when set before the service connects, is how many users
	// are online: u000000@localhost … u(sessions-1), each with every
	// resource of resources, show away, the status text of the user's
	// number, priority 0 and the user's IP (fakeUserIP). The session list
	// gives them with Prosody's details, and a probe of one of them is
	// answered with the presence of each of its sessions.
	sessions int
	// bareList, set before the service connects, makes the session list
	// name the users without Prosody's details, as ejabberd's does: the
	// service then asks user-stats for each (admin.OnlineSessions).
	bareList bool
	// listDelay, set before the service connects, holds the serve loop
	// that long before each session list is answered: a busy server.
	listDelay time.Duration
	// silent, when above 0, is 1 + the number of an online user whose
	// probes go unanswered (its presence then comes only when injected).
	silent atomic.Int64
	// items, set before the service connects, is what the actual node
	// holds when the service fetches it.
	items fakeItems
	// When (time.Now().UnixNano()) the session list and the actual node's
	// items were written, and the last probe of an online user answered.
	listedAt, probedAt, itemsAt atomic.Int64
	// bigMu keeps injected presence out of a large answer written in
	// chunks (writeChunked).
	bigMu sync.Mutex
	big   []byte // the chunk being written, in the serve loop

	// created: node → true, created once; a second create is a conflict.
	// Two fakes that stand for the nodes of one cluster share it, as they
	// would share pubsub.
	created *sync.Map

	// retractGone answers every retract with item-not-found, as ejabberd
	// 23.01 does for an item it keeps (docs/ejabberd.md); itemsGone makes
	// the actual node's fetch list nothing, whatever items says.
	retractGone, itemsGone atomic.Bool

	keepLast   atomic.Bool // keep a copy of the last actual publish (tests)
	lmu        sync.Mutex
	lastActual []byte
}

// fakeItems is what the actual node holds.
type fakeItems uint8

const (
	itemsNone  fakeItems = iota // nothing
	itemsWarm                   // the sessions, as the service publishes them: nothing to do
	itemsStale                  // one item per online user, of resource fakeStaleRes, offline now: retract and publish each
)

// fakeSince is the since of the items on the actual node.
var fakeSince = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// newFakeServer listens on 127.0.0.1 and serves the component's
// connections until the test ends.
func newFakeServer(tb testing.TB) *fakeServer {
	tb.Helper()
	n := config.Default().Nodes
	f := &fakeServer{created: new(sync.Map),
		tb: tb, nodes: n, resources: []string{"r"},
		titles: map[string]string{
			n.Status: "pubpresence: service status",
			n.Live:   "pubpresence: presence events",
			n.Actual: "pubpresence: online connections",
		},
		inj:      make([]byte, 0, 64<<10),
		tick:     time.NewTicker(20 * time.Millisecond),
		progress: make(chan struct{}, 1),
	}
	f.srv = xmpptest.NewServer(tb, xmpptest.Config{
		Name: fakeComponent, Secret: fakeSecret,
		Views: true, Handler: f.handle, Flushed: f.flushed,
	})
	tb.Cleanup(f.close)
	return f
}

// config returns the service's configuration for this server: defaults,
// with the periodic reconciliation and the HTTP listener off.
func (f *fakeServer) config() *config.Config {
	f.tb.Helper()
	toml := "[xmpp]\naddress = '" + f.srv.Addr() + "'\ncomponent = '" + fakeComponent +
		"'\nsecret = '" + fakeSecret + "'\ndomains = ['" + fakeDomain + "']\n" +
		"[sync]\nreconcile_interval = '0s'\n[http]\nlisten = ''\n"
	cfg, err := config.Parse([]byte(toml), nil)
	if err != nil {
		f.tb.Fatalf("fake server: config: %v", err)
	}
	return cfg
}

func (f *fakeServer) close() {
	f.srv.Close()
	f.tick.Stop()
}

// handle is the server's Handler: it appends the answer to e to Out.
func (f *fakeServer) handle(c *xmpptest.Conn, e *xmpptest.Element) bool {
	var counted bool
	if f.grant != "" && e.Is("iq") && bytes.Contains(e.Inner, []byte("urn:xmpp:ping")) && f.granted.Swap(c) != c {
		c.Out = append(c.Out, "<message to='"+fakeComponent+"' from='"+fakeDomain+"'>"+f.grant+"</message>"...)
		for u := range f.burst {
			c.Out = appendPresence(c.Out, u, "r", fakeOnlineShow, u, 0)
		}
	}
	c.Out, counted = f.answer(c, c.Out, e)
	f.counted = f.counted || counted
	return true
}

// flushed runs once the server wrote the answers of one read: it wakes
// waitFor when they counted something.
func (f *fakeServer) flushed(*xmpptest.Conn) {
	if !f.counted {
		return
	}
	f.counted = false
	select {
	case f.progress <- struct{}{}:
	default:
	}
}

// fakeAttr returns the value of the attribute whose " name='" is key, as
// written (still escaped), or nil.
func fakeAttr(tag []byte, key string) []byte {
	i := bytes.Index(tag, []byte(key))
	if i < 0 {
		return nil
	}
	v := tag[i+len(key):]
	if j := bytes.IndexByte(v, '\''); j >= 0 {
		return v[:j]
	}
	return nil
}

// upTo returns b up to the first c (all of b when there is none).
func upTo(b []byte, c byte) []byte {
	if i := bytes.IndexByte(b, c); i >= 0 {
		return b[:i]
	}
	return b
}

// answer appends the answer to e to out. counted says whether a publish
// or retract was counted.
func (f *fakeServer) answer(c *xmpptest.Conn, out []byte, e *xmpptest.Element) ([]byte, bool) {
	if !e.Is("iq") {
		if e.Is("presence") {
			f.presences.Add(1)
			if string(e.RawAttr("type")) == "probe" {
				f.probes.Add(1)
				return f.probeAnswer(out, e.RawAttr("to")), false
			}
		}
		return out, false // presence from the component: nothing else to answer
	}
	typ := e.RawAttr("type")
	if string(typ) != "get" && string(typ) != "set" {
		return out, false
	}
	id := e.RawAttr("id")
	to := e.RawAttr("to")
	in := e.Inner
	switch {
	case bytes.HasPrefix(in, []byte(fakePublishPrefix)):
		rest := in[len(fakePublishPrefix):]
		node := upTo(rest, '\'')
		switch string(node) {
		case f.nodes.Live:
			f.live.Add(1)
		case f.nodes.Actual:
			if item := fakeAttr(rest, "<item id='"); bytes.HasPrefix(item, []byte("sentinel@")) {
				f.sentinel.Add(1)
			}
			if f.keepLast.Load() {
				f.lmu.Lock()
				f.lastActual = append(f.lastActual[:0], in...)
				f.lmu.Unlock()
			}
			f.actual.Add(1)
		case f.nodes.Status:
			if bytes.Contains(rest, []byte("<value>online</value>")) {
				f.online.Add(1)
			}
			f.statusPub.Add(1)
		}
		return fakeResult(out, id, to, "", nil), true
	case bytes.HasPrefix(in, []byte(fakeCreatePrefix)):
		node := string(upTo(in[len(fakeCreatePrefix):], '\''))
		if _, exists := f.created.LoadOrStore(node, true); exists {
			// As the servers answer: the node is there (the service then
			// reconfigures it).
			out = fakeIQOpen(out, "error", id, to)
			return append(out, "<error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"...), false
		}
		f.others.Add(1)
		return fakeResult(out, id, to, "", nil), false
	case string(typ) == "set" && bytes.HasPrefix(in, []byte(fakeFormOpen)):
		if f.failConfigure.Add(-1) >= 0 {
			return fakeWaitError(out, id, to), false
		}
		f.failConfigure.Store(0)
		f.configured.Add(1)
		return fakeResult(out, id, to, "", nil), false
	case bytes.HasPrefix(in, []byte(fakeRetractPrefix)):
		f.retracts.Add(1)
		if f.retractGone.Load() {
			out = fakeIQOpen(out, "error", id, to)
			return append(out, "<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"...), true
		}
		return fakeResult(out, id, to, "", nil), true
	case bytes.HasPrefix(in, []byte(fakePurgePrefix)) && string(upTo(in[len(fakePurgePrefix):], '\'')) == f.nodes.Actual:
		if f.failPurge.Add(-1) >= 0 {
			out = fakeIQOpen(out, "error", id, to)
			return append(out, "<error type='cancel'><feature-not-implemented xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"...), true
		}
		f.failPurge.Store(0)
		f.purgedAfter.Store(f.actual.Load())
		f.purges.Add(1)
		return fakeResult(out, id, to, "", nil), true
	case bytes.Contains(in, []byte("urn:xmpp:ping")):
		f.pings.Add(1)
		return fakeResult(out, id, to, "", nil), false
	case bytes.Contains(in, []byte(fakeAdminNS+"#user-stats'")):
		f.userStats.Add(1)
		if f.failStats.Add(-1) >= 0 {
			return fakeWaitError(out, id, to), false
		}
		f.failStats.Store(0)
		var bare []byte
		if i := bytes.Index(in, []byte(fakeAccountField)); i >= 0 {
			bare = upTo(in[i+len(fakeAccountField):], '<')
		}
		return f.userStatsAnswer(out, id, to, bare), false
	case bytes.Contains(in, []byte(fakeAdminNS+"#get-online-users-list'")):
		f.lists.Add(1)
		time.Sleep(f.listDelay)
		if f.sessions == 0 {
			return fakeResult(out, id, to, fakeListAnswer, nil), false
		}
		out = f.writeChunked(c, fakeResultOpen(out, id, to), f.sessions, f.listEntry, fakeListOpen+">", fakeListClose+"</iq>")
		f.listedAt.Store(time.Now().UnixNano())
		return out, false
	case bytes.HasPrefix(in, []byte(fakeItemsPrefix)) && string(upTo(in[len(fakeItemsPrefix):], '\'')) == f.nodes.Actual &&
		f.items != itemsNone:
		open := fakeItemsPrefix + f.nodes.Actual + "'>"
		n := f.sessions
		if f.itemsGone.Load() {
			n = 0
		}
		out = f.writeChunked(c, fakeResultOpen(out, id, to), n, f.item, open, "</items></pubsub></iq>")
		f.itemsAt.Store(time.Now().UnixNano())
		return out, false
	case string(typ) == "get" && bytes.HasPrefix(in, []byte(fakeFormOpen)):
		node := upTo(in[len(fakeFormOpen):], '\'')
		out = fakeResultOpen(out, id, to)
		out = append(out, fakeFormOpen...)
		out = append(out, node...)
		out = append(out, fakeFormFields...)
		out = append(out, f.titles[string(node)]...)
		out = append(out, fakeFormClose...)
		return append(out, "</iq>"...), false
	default:
		f.others.Add(1)
		return fakeResult(out, id, to, "", nil), false
	}
}

// fakeWaitError appends an error answer of type wait
// (internal-server-error) to the request id sent to to.
func fakeWaitError(out, id, to []byte) []byte {
	out = fakeIQOpen(out, "error", id, to)
	return append(out, "<error type='wait'><internal-server-error xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"...)
}

// userStatsAnswer appends the user-stats answer for bare: one session per
// resource, each at the IP made of the user's number.
func (f *fakeServer) userStatsAnswer(out, id, to, bare []byte) []byte {
	out = fakeResultOpen(out, id, to)
	out = append(out, fakeStatsOpen...)
	ip := fakeUserIP(bare)
	for range f.resources {
		out = append(out, "<value>"...)
		out = appendIP(out, ip)
		out = append(out, "</value>"...)
	}
	out = append(out, fakeStatsMiddle...)
	for _, r := range f.resources {
		out = append(out, "<value>"...)
		out = append(out, r...)
		out = append(out, "</value>"...)
	}
	out = append(out, fakeStatsClose...)
	return append(out, "</iq>"...)
}

// writeChunked writes out (what the serve loop has not written yet), then
// open, the entries 0…n-1 made by entry, and end, straight to c in chunks
// of about fakeChunk, and returns out emptied.
func (f *fakeServer) writeChunked(c *xmpptest.Conn, out []byte, n int, entry func([]byte, int) []byte, open, end string) []byte {
	f.bigMu.Lock()
	defer f.bigMu.Unlock()
	b := append(f.big[:0], out...)
	b = append(b, open...)
	for i := range n {
		b = entry(b, i)
		if len(b) >= fakeChunk {
			if c.WriteBytes(b) != nil {
				return out[:0] // the connection ended: its reader sees it
			}
			b = b[:0]
		}
	}
	b = append(b, end...)
	_ = c.WriteBytes(b)
	f.big = b[:0]
	return out[:0]
}

// listEntry appends user u's lines of the session list, as Prosody's
// details give them: the bare JID, then " - <resource>: away(0), IP: [<ip>]"
// for each session.
func (f *fakeServer) listEntry(b []byte, u int) []byte {
	b = append(b, "<value>"...)
	b = fakeUser(b, u)
	b = append(b, "</value>"...)
	if f.bareList {
		return b
	}
	for _, r := range f.resources {
		b = append(b, "<value> - "...)
		b = append(b, r...)
		b = append(b, ": "+fakeOnlineShow+"(0), IP: ["...)
		b = appendIP(b, uint32(u)&0x00ffffff)
		b = append(b, "]</value>"...)
	}
	return b
}

// onlineConn is the state of user u's session on resource res, as the
// service tracks and publishes it.
func onlineConn(u int, res string) presence.Conn {
	jid := string(fakeUser(nil, u)) + "/" + res
	return presence.Conn{JID: jid, Show: presence.Away, Text: string(fakeText(nil, u)),
		IP: string(appendIP(nil, uint32(u)&0x00ffffff)), Since: fakeSince}
}

// item appends user u's items of the actual node: its sessions (warm), or
// one of a resource no longer online (stale).
func (f *fakeServer) item(b []byte, u int) []byte {
	one := func(b []byte, c presence.Conn) []byte {
		b = append(b, "<item id='"...)
		b = append(b, c.JID...)
		b = append(b, "'>"...)
		b = nodes.AppendUser(b, c, f.nodes.PublishIP)
		return append(b, "</item>"...)
	}
	if f.items == itemsStale {
		return one(b, onlineConn(u, fakeStaleRes))
	}
	for _, r := range f.resources {
		b = one(b, onlineConn(u, r))
	}
	return b
}

// probeAnswer appends the answer to a probe of the bare JID to: the
// presence of each of the user's sessions when the user is online
// (sessions), else nothing.
func (f *fakeServer) probeAnswer(out, to []byte) []byte {
	u, ok := fakeUserNumber(to)
	if !ok || u >= f.sessions || int64(u) == f.silent.Load()-1 {
		return out
	}
	for _, r := range f.resources {
		out = appendPresence(out, u, r, fakeOnlineShow, u, 0)
	}
	if f.probes.Load() == int64(f.sessions) {
		f.probedAt.Store(time.Now().UnixNano())
	}
	return out
}

// fakeUserNumber returns NNNNNN of uNNNNNN@localhost.
func fakeUserNumber(bare []byte) (int, bool) {
	rest, ok := bytes.CutPrefix(bare, []byte("u"))
	if !ok {
		return 0, false
	}
	digits, ok := bytes.CutSuffix(rest, []byte("@"+fakeDomain))
	if !ok || len(digits) == 0 {
		return 0, false
	}
	n := 0
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// fakeUserIP is the address of user uNNNNNN@…: 10.0.0.0 plus NNNNNN;
// 10.255.255.255 for any other name.
func fakeUserIP(bare []byte) uint32 {
	if len(bare) < 2 || bare[0] != 'u' {
		return 0x00ffffff
	}
	n := uint32(0)
	for _, c := range bare[1:] {
		if c == '@' {
			return n & 0x00ffffff
		}
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + uint32(c-'0')
	}
	return 0x00ffffff
}

func appendIP(b []byte, n uint32) []byte {
	b = append(b, "10."...)
	b = strconv.AppendUint(b, uint64(n>>16&0xff), 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, uint64(n>>8&0xff), 10)
	b = append(b, '.')
	return strconv.AppendUint(b, uint64(n&0xff), 10)
}

// fakeResultOpen appends the start of a result to the request id sent to
// to.
func fakeResultOpen(out, id, to []byte) []byte { return fakeIQOpen(out, "result", id, to) }

// fakeIQOpen appends the start of an answer of type typ to the request id
// sent to to, from to (the component checks that).
func fakeIQOpen(out []byte, typ string, id, to []byte) []byte {
	out = append(out, "<iq type='"...)
	out = append(out, typ...)
	out = append(out, "' id='"...)
	out = append(out, id...)
	out = append(out, "' from='"...)
	out = append(out, to...)
	return append(out, "' to='"+fakeComponent+"'>"...)
}

// fakeResult appends a whole result with inner (a string or bytes).
func fakeResult(out, id, to []byte, inner string, innerB []byte) []byte {
	if inner == "" && len(innerB) == 0 {
		out = append(out, "<iq type='result' id='"...)
		out = append(out, id...)
		out = append(out, "' from='"...)
		out = append(out, to...)
		return append(out, "' to='"+fakeComponent+"'/>"...)
	}
	out = fakeResultOpen(out, id, to)
	out = append(out, inner...)
	out = append(out, innerB...)
	return append(out, "</iq>"...)
}

// fakeUser appends the bare JID of user number n: u000042@localhost.
func fakeUser(b []byte, n int) []byte {
	b = append(b, 'u')
	b = appendPadded(b, n, 6)
	return append(b, "@"+fakeDomain...)
}

// appendPadded appends n in decimal with at least width digits.
func appendPadded(b []byte, n, width int) []byte {
	var d [20]byte
	i := len(d)
	for n > 0 || i > len(d)-width {
		i--
		d[i] = byte('0' + n%10)
		n /= 10
	}
	return append(b, d[i:]...)
}

// fakeText appends the status text number seq, 22 bytes: "busy with task 0000042".
func fakeText(b []byte, seq int) []byte {
	b = append(b, "busy with task "...)
	return appendPadded(b, seq, 7)
}

// injectPresence queues available presence from user number user (or the
// sentinel user when user < 0) with resource res, as a server delivers it
// to the component: show when not empty, the status text
// number textSeq when textSeq ≥ 0, and priority. It is written by flush, or
// once enough is queued.
func (f *fakeServer) injectPresence(user int, res, show string, textSeq, prio int) {
	f.inj = appendPresence(f.inj, user, res, show, textSeq, prio)
	if len(f.inj) >= 16<<10 {
		f.flush()
	}
}

// appendPresence appends the presence injectPresence describes.
func appendPresence(b []byte, user int, res, show string, textSeq, prio int) []byte {
	b = append(b, "<presence to='"+fakeComponent+"' from='"...)
	if user < 0 {
		b = append(b, "sentinel@"+fakeDomain...)
	} else {
		b = fakeUser(b, user)
	}
	b = append(b, '/')
	b = append(b, res...)
	b = append(b, "'>"...)
	if show != "" {
		b = append(b, "<show>"...)
		b = append(b, show...)
		b = append(b, "</show>"...)
	}
	if textSeq >= 0 {
		b = append(b, "<status>"...)
		b = fakeText(b, textSeq)
		b = append(b, "</status>"...)
	}
	b = append(b, "<priority>"...)
	b = strconv.AppendInt(b, int64(prio), 10)
	return append(b, "</priority></presence>"...)
}

// flush writes the injected presence.
func (f *fakeServer) flush() {
	if len(f.inj) == 0 {
		return
	}
	if f.conn == nil {
		f.conn = f.srv.Conn(f.tb)
	}
	f.bigMu.Lock()
	err := f.conn.WriteBytes(f.inj)
	f.bigMu.Unlock()
	f.inj = f.inj[:0]
	if err != nil {
		f.tb.Fatalf("fake server: inject: %v", err)
	}
}

// waitFor flushes what was injected and waits until cond holds, waking on
// every batch of answers that counted something (and on a slow tick, for
// conditions the fake does not see). It fails the test after fakeWait.
func (f *fakeServer) waitFor(what string, cond func() bool) {
	f.tb.Helper()
	f.flush()
	start := time.Now()
	for !cond() {
		if err := f.srv.Err(); err != nil {
			f.tb.Fatalf("fake server: %v", err)
		}
		if time.Since(start) > fakeWait {
			f.tb.Fatalf("fake server: timed out waiting for %s (live %d, actual %d, status %d, user-stats %d)",
				what, f.live.Load(), f.actual.Load(), f.statusPub.Load(), f.userStats.Load())
		}
		select {
		case <-f.progress:
		case <-f.tick.C:
		}
	}
}

// runningService is a Service running against a fakeServer.
type runningService struct {
	svc    *Service
	m      *metrics.Metrics
	st     *status.Tracker
	cancel context.CancelFunc
	done   chan error
}

// startService runs a service against f, as cmd/pubpresence/serve.go does
// (its own metrics registry and status tracker; the logger at info, to
// io.Discard), and waits until it is online: the fake has answered the
// publish of online on the status node and the service has taken it.
func startService(tb testing.TB, f *fakeServer, setup ...func(*runningService)) *runningService {
	tb.Helper()
	rs := &runningService{m: metrics.New("bench"), st: &status.Tracker{}, done: make(chan error, 1)}
	log := zerolog.New(io.Discard).Level(zerolog.InfoLevel)
	rs.svc = New(f.config(), log, rs.m, rs.st)
	for _, fn := range setup {
		fn(rs) // before Run
	}
	ctx, cancel := context.WithCancel(context.Background())
	rs.cancel = cancel
	go func() { rs.done <- rs.svc.Run(ctx) }()
	f.waitFor("online on the status node", func() bool {
		return f.online.Load() > 0 && rs.st.Phase() == status.Online
	})
	return rs
}

// runService starts a service with cfg against the fake whose config it
// was, logging to log, and stops it when the test ends.
func runService(tb testing.TB, cfg *config.Config, log zerolog.Logger) *runningService {
	tb.Helper()
	rs := &runningService{m: metrics.New("test"), st: &status.Tracker{}, done: make(chan error, 1)}
	rs.svc = New(cfg, log, rs.m, rs.st)
	ctx, cancel := context.WithCancel(context.Background())
	rs.cancel = cancel
	go func() { rs.done <- rs.svc.Run(ctx) }()
	tb.Cleanup(func() { rs.stop(tb) })
	return rs
}

// stop stops the service cleanly and waits for Run to return.
func (rs *runningService) stop(tb testing.TB) {
	tb.Helper()
	rs.cancel()
	select {
	case err := <-rs.done:
		if err != nil {
			tb.Errorf("Run: %v", err)
		}
	case <-time.After(fakeWait):
		tb.Fatal("Run did not return after cancel")
	}
}

// metric returns the value of the gauge or counter name whose labels
// include labels (name=value pairs), summed over the matching series.
func (rs *runningService) metric(tb testing.TB, name string, labels ...string) float64 {
	tb.Helper()
	mfs, err := rs.m.Registry.Gather()
	if err != nil {
		tb.Fatalf("gather: %v", err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue series
				}
			}
			if g := m.GetGauge(); g != nil {
				sum += g.GetValue()
			}
			if c := m.GetCounter(); c != nil {
				sum += c.GetValue()
			}
		}
	}
	return sum
}

// TestFakeServerLifecycle checks the fake against the service: it reaches
// online, and a new connection is looked up and published on both nodes
// with the fake's IP; a change is published again.
func TestFakeServerLifecycle(t *testing.T) {
	f := newFakeServer(t)
	f.keepLast.Store(true)
	rs := startService(t, f)
	defer rs.stop(t)
	if f.lists.Load() == 0 {
		t.Error("get-online-users-list was never asked")
	}
	f.injectPresence(42, "r", "away", 1, 5)
	f.waitFor("the first publishes", func() bool { return f.live.Load() == 1 && f.actual.Load() == 1 })
	f.lmu.Lock()
	got := string(f.lastActual)
	f.lmu.Unlock()
	for _, want := range []string{"<publish node='presence/actual'>", "<item id='u000042@localhost/r'>",
		"status='away'", "ip='10.0.0.42'", "priority='5'", "<text>busy with task 0000001</text>"} {
		if !bytes.Contains([]byte(got), []byte(want)) {
			t.Errorf("actual publish %s lacks %s", got, want)
		}
	}
	if n := f.userStats.Load(); n != 1 {
		t.Errorf("user-stats asked %d times, want 1", n)
	}
	f.injectPresence(42, "r", "dnd", 2, 5)
	f.waitFor("the change", func() bool { return f.live.Load() == 2 && f.actual.Load() == 2 })
	if n := rs.metric(t, "pubpresence_tracked_connections"); n != 1 {
		t.Errorf("tracked connections = %v, want 1", n)
	}
	if n := f.userStats.Load(); n != 1 {
		t.Errorf("user-stats asked %d times after a change, want still 1", n)
	}
}
