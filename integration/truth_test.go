//go:build integration

package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/admin"
	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/internal/c2s"
	"github.com/pubpresence/pubpresence/internal/testserver"
	"github.com/pubpresence/pubpresence/nodes"
	"github.com/pubpresence/pubpresence/presence"
	"github.com/pubpresence/pubpresence/pubsub"
	"github.com/pubpresence/pubpresence/watch"
)

// The truth check of the fault suite: after a fault, presence/actual must
// equal the server's own list of connections (XEP-0133, asked by the
// harness's admin component), the presence each client last sent, and
// what a watcher following the client protocol holds.

// serverSessions returns the connections the server lists as online on its
// domain, by full JID, restricted to users whose localpart starts with
// prefix. Prosody lists sessions that sent no presence as "unavailable":
// those are left out.
func serverSessions(t testing.TB, srv *testserver.Server, prefix string) (map[string]bool, error) {
	t.Helper()
	addr, name, secret := srv.Harness()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := component.Dial(ctx, component.Config{Address: addr, Name: name, Secret: secret})
	if err != nil {
		return nil, fmt.Errorf("harness component: %w", err)
	}
	defer c.Close()
	sessions, _, err := (&admin.Client{IQ: c, Concurrency: 8}).OnlineSessions(ctx, srv.Domain)
	if err != nil {
		return nil, fmt.Errorf("online sessions: %w", err)
	}
	out := make(map[string]bool)
	for _, s := range sessions {
		if strings.HasPrefix(s.JID, prefix) && s.Show != "unavailable" {
			out[s.JID] = true
		}
	}
	return out, nil
}

// verdict is what a truth check found.
type verdict struct {
	converged bool
	took      time.Duration // from the end of the fault to the truth
	quiet     time.Duration // from the truth check's start (users quiet) to the truth
	stale     int           // items on actual the server did not list, at the first look once online
	missing   int           // connections the server listed that actual lacked, at that look
	detail    string        // why not converged
}

// report prints one row of the fault table, for the note.
func report(t testing.TB, scenario string, srv *testserver.Server, v verdict) {
	t.Helper()
	t.Logf("FAULT | %s | %s | converged=%v | %.2fs after the fault, %.2fs after the users stopped | stale=%d missing=%d %s",
		scenario, srv.Kind, v.converged, v.took.Seconds(), v.quiet.Seconds(), v.stale, v.missing, v.detail)
}

// truth waits for the service to be online and presence/actual, the
// server's list, the clients' last presence and a watcher following the
// protocol to agree, within wait. since is when the fault ended.
func truth(t testing.TB, srv *testserver.Server, svc *service, w *watch.Follower, ch *churner, since time.Time) verdict {
	t.Helper()
	return truthOf(t, srv, func() (map[string]bool, error) { return serverSessions(t, srv, ch.prefix) }, svc, w, ch, since)
}

// truthOf is truth with the server's list of connections from sessions
// (those of the churner's prefix).
func truthOf(t testing.TB, srv *testserver.Server, sessions func() (map[string]bool, error), svc *service, w *watch.Follower, ch *churner, since time.Time) verdict {
	t.Helper()
	want := ch.final()
	var v verdict
	began := time.Now()
	deadline := time.Now().Add(wait)
	for svc.Ready() != http.StatusOK {
		if time.Now().After(deadline) {
			v.detail = fmt.Sprintf("never ready (last %d)", svc.Ready())
			return v
		}
		time.Sleep(20 * time.Millisecond)
	}
	doneCtx, cancel := context.WithCancel(context.Background())
	cancel() // WaitFor with it reports only whether the follower ended
	rd := dial(t, srv, reader, fmt.Sprintf("truth%d", rand.N(1<<30)))
	defer rd.Abort()
	first := true
	for {
		items, dup, err := actualOf(rd, srv)
		onServer, serr := sessions()
		var why []string
		switch {
		case err != nil:
			why = append(why, "fetch actual: "+err.Error())
		case serr != nil:
			why = append(why, "server list: "+serr.Error())
		default:
			if first {
				first = false
				for jid := range items {
					if strings.HasPrefix(jid, ch.prefix) && !onServer[jid] {
						v.stale++
					}
				}
				for jid := range onServer {
					if _, ok := items[jid]; !ok {
						v.missing++
					}
				}
			}
			if dup != "" {
				why = append(why, "duplicate item "+dup)
			}
			why = append(why, compare("actual", items, want)...)
			why = append(why, compareSet("server list", onServer, want)...)
			if w != nil {
				st, conns := w.Snapshot()
				if _, _, err := w.WaitFor(doneCtx, func(string, []presence.Conn) bool { return false }); err != nil && err != context.Canceled {
					why = append(why, "watcher ended: "+err.Error())
				}
				if st != "online" {
					why = append(why, "watcher status "+st)
				}
				why = append(why, compare("watcher", byJID(conns), want)...)
			}
		}
		if len(why) == 0 {
			v.converged, v.took, v.quiet = true, time.Since(since), time.Since(began)
			return v
		}
		if time.Now().After(deadline) {
			v.detail = strings.Join(why, "; ")
			return v
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// mustTruth runs truth, reports the row, and fails the test unless it converged.
func mustTruth(t testing.TB, scenario string, srv *testserver.Server, svc *service, w *watch.Follower, ch *churner, since time.Time) verdict {
	t.Helper()
	v := truth(t, srv, svc, w, ch, since)
	report(t, scenario, srv, v)
	if !v.converged {
		t.Fatalf("%s on %s: no convergence: %s", scenario, srv.Kind, v.detail)
	}
	return v
}

func byJID(conns []presence.Conn) map[string]presence.Conn {
	m := make(map[string]presence.Conn, len(conns))
	for _, c := range conns {
		m[c.JID] = c
	}
	return m
}

// actualOf fetches presence/actual; dup names an item id seen twice.
func actualOf(rd *c2s.Client, srv *testserver.Server) (map[string]presence.Conn, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	items, err := rd.Items(ctx, srv.Pubsub, testNodes.Actual)
	if err != nil {
		return nil, "", err
	}
	m := make(map[string]presence.Conn, len(items))
	dup := ""
	for _, it := range items {
		c, err := parseItem(it)
		if err != nil {
			return nil, "", err
		}
		if _, ok := m[c.JID]; ok {
			dup = c.JID
		}
		m[c.JID] = c
	}
	return m, dup, nil
}

func parseItem(it pubsub.Item) (presence.Conn, error) {
	c, err := nodes.ParseUser(it.Payload)
	if err != nil {
		return c, fmt.Errorf("item %s: %w", it.ID, err)
	}
	if c.JID != it.ID {
		return c, fmt.Errorf("item id %s holds %s", it.ID, c.JID)
	}
	return c, nil
}

// compare lists how got differs from want (show and text).
func compare(what string, got map[string]presence.Conn, want map[string]conn) []string {
	var diffs []string
	for jid, w := range want {
		c, ok := got[jid]
		switch {
		case !ok:
			diffs = append(diffs, what+" lacks "+jid)
		case c.Show != w.show || c.Text != w.text:
			diffs = append(diffs, fmt.Sprintf("%s has %s %s %q, want %s %q", what, jid, c.Show, c.Text, w.show, w.text))
		}
	}
	for jid := range got {
		if _, ok := want[jid]; !ok {
			diffs = append(diffs, what+" has stale "+jid)
		}
	}
	sort.Strings(diffs)
	return diffs
}

func compareSet(what string, got map[string]bool, want map[string]conn) []string {
	var diffs []string
	for jid := range want {
		if !got[jid] {
			diffs = append(diffs, what+" lacks "+jid)
		}
	}
	for jid := range got {
		if _, ok := want[jid]; !ok {
			diffs = append(diffs, what+" has "+jid)
		}
	}
	sort.Strings(diffs)
	return diffs
}

// churner keeps n users online, each changing presence every 100–400 ms and
// now and then leaving and coming back, until stopped. A user whose stream
// fails (a server restart) logs in again and sends its presence. It knows
// the presence each connection last sent: the truth to converge to.
type churner struct {
	t      testing.TB
	srv    *testserver.Server
	prefix string // localpart prefix of its users
	locals []string
	// at, when set, says where a user logs in again, in order of
	// preference (a cluster's nodes); else srv.C2SAddr.
	at func(local string) []string

	mu      sync.Mutex
	last    map[string]conn // full JID → last presence sent; absent when offline
	clients []*c2s.Client   // every client it logged in, closed at the end
	cur     map[string]*c2s.Client

	stop chan struct{}
	done sync.WaitGroup
}

var shows = []presence.Show{presence.Online, presence.Chat, presence.Away, presence.XA, presence.DND}

// startChurn logs n users in (created beforehand with users(prefix, n)),
// subscribed to the component, and starts changing their presence.
func startChurn(t testing.TB, srv *testserver.Server, prefix string, n int) *churner {
	t.Helper()
	return startChurnAt(t, srv, prefix, users(prefix, n), nil)
}

// startChurnAt is startChurn for the users locals, each logged in through
// the first of at(local) (srv.C2SAddr when at is nil), and again through
// the first that takes it.
func startChurnAt(t testing.TB, srv *testserver.Server, prefix string, locals []string, at func(string) []string) *churner {
	t.Helper()
	ch := &churner{t: t, srv: srv, prefix: prefix, locals: locals, at: at, last: make(map[string]conn),
		cur: make(map[string]*c2s.Client), stop: make(chan struct{})}
	clients := make([]*c2s.Client, len(locals))
	for i, local := range locals {
		clients[i] = onlineAt(t, srv, ch.addrs(local)[0], local, "r")
		drain(clients[i])
		ch.last[clients[i].JID()] = conn{show: presence.Online}
		ch.cur[clients[i].JID()] = clients[i]
	}
	for i, cl := range clients {
		ch.done.Add(1)
		go ch.run(cl, locals[i], rand.New(rand.NewPCG(uint64(i), 7)))
	}
	t.Cleanup(func() {
		ch.halt()
		for _, cl := range ch.clients {
			_ = cl.Abort()
		}
	})
	return ch
}

// drain reads cl's stanzas so that its reader never waits.
func drain(cl *c2s.Client) {
	go func() {
		for {
			select {
			case <-cl.Stanzas():
			case <-cl.Done():
				return
			}
		}
	}()
}

func (ch *churner) set(jid string, c conn, on bool) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if on {
		ch.last[jid] = c
	} else {
		delete(ch.last, jid)
	}
}

func (ch *churner) run(cl *c2s.Client, local string, rng *rand.Rand) {
	defer ch.done.Done()
	jid := cl.JID()
	n := 0
	for {
		select {
		case <-ch.stop:
			return
		case <-time.After(time.Duration(100+rng.IntN(300)) * time.Millisecond):
		}
		n++
		switch {
		case ended(cl):
			// Lost (server restart) or away: log in again.
			if cl != nil {
				_ = cl.Abort()
			}
			ch.set(jid, conn{}, false)
			cl = ch.login(local)
			if cl == nil {
				continue
			}
			ch.mu.Lock()
			ch.cur[jid] = cl
			ch.mu.Unlock()
			c := conn{show: presence.Online, text: fmt.Sprintf("back %d", n)}
			if cl.Presence("", c.text, 0) == nil {
				ch.set(jid, c, true)
			}
		case rng.IntN(10) == 0:
			// Leave for a while.
			ch.set(jid, conn{}, false)
			_ = cl.Close()
		default:
			s := shows[rng.IntN(len(shows))]
			c := conn{show: s, text: fmt.Sprintf("%s %d", local, n)}
			show := string(s)
			if s == presence.Online {
				show = ""
			}
			ch.set(jid, c, true) // before the send: a failed one is redone on login
			if cl.Presence(show, c.text, 0) != nil {
				ch.set(jid, conn{}, false)
			}
		}
	}
}

// ended reports whether cl's session is over: lost, or closed by the
// churner (then Err is nil).
func ended(cl *c2s.Client) bool {
	if cl == nil {
		return true
	}
	select {
	case <-cl.Done():
		return true
	default:
		return false
	}
}

// login logs local in again without failing the test (the server may be
// down); nil when it cannot yet.
func (ch *churner) login(local string) *c2s.Client {
	var cl *c2s.Client
	for _, addr := range ch.addrs(local) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := c2s.Dial(ctx, c2s.Config{Addr: addr, JID: local + "@" + ch.srv.Domain, Password: password, Resource: "r"})
		cancel()
		if err == nil {
			cl = c
			break
		}
	}
	if cl == nil {
		return nil
	}
	drain(cl)
	ch.mu.Lock()
	ch.clients = append(ch.clients, cl)
	ch.mu.Unlock()
	return cl
}

// halt stops changing presence; every user stays as it is, online users
// stay online, until the test ends.
func (ch *churner) halt() {
	select {
	case <-ch.stop:
	default:
		close(ch.stop)
	}
	ch.done.Wait()
	ch.mu.Lock()
	defer ch.mu.Unlock()
	for jid, cl := range ch.cur {
		if ended(cl) {
			delete(ch.last, jid) // lost and not back yet: offline
		}
	}
}

// addrs returns where local logs in, in order of preference.
func (ch *churner) addrs(local string) []string {
	if ch.at == nil {
		return []string{ch.srv.C2SAddr}
	}
	return ch.at(local)
}

// resume starts changing presence again after halt, from where each user
// is (one lost logs in again).
func (ch *churner) resume() {
	ch.stop = make(chan struct{})
	ch.mu.Lock()
	defer ch.mu.Unlock()
	for i, local := range ch.locals {
		cl := ch.cur[local+"@"+ch.srv.Domain+"/r"]
		ch.done.Add(1)
		go ch.run(cl, local, rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano()))))
	}
}

// final returns the last presence of every online connection.
func (ch *churner) final() map[string]conn {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	m := make(map[string]conn, len(ch.last))
	for k, v := range ch.last {
		m[k] = v
	}
	return m
}

// proxy forwards TCP connections to target until cut, which drops the
// connections it holds without a FIN towards the client: the client's
// bytes are read and discarded and nothing more is written to it, while
// the server side is closed (the server sees the client go). New
// connections are forwarded again. Until then, a side that closes (a
// node killed) closes the other, as a direct connection would. While held,
// it closes every new connection at once (the target seems down).
type proxy struct {
	ln     net.Listener
	target string
	held   atomic.Bool

	mu    sync.Mutex
	pairs []*pair // forwarding
	all   []*pair // every pair, closed at the end
}

type pair struct {
	client, server net.Conn
	cut            chan struct{}
}

func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, pr := range p.all {
			_ = pr.client.Close()
			_ = pr.server.Close()
		}
	})
	return p
}

func (p *proxy) Addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.held.Load() {
			_ = c.Close()
			continue
		}
		s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			_ = c.Close()
			continue
		}
		pr := &pair{client: c, server: s, cut: make(chan struct{})}
		p.mu.Lock()
		p.pairs = append(p.pairs, pr)
		p.all = append(p.all, pr)
		p.mu.Unlock()
		go pr.pipe(s, c) // client → server
		go pr.pipe(c, s) // server → client
	}
}

// pipe copies from src to dst until the pair is cut; after that it reads
// and discards src (so the peer's writes never block) and writes nothing.
func (pr *pair) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			select {
			case <-pr.cut:
			default:
				if _, werr := dst.Write(buf[:n]); werr != nil {
					select {
					case <-pr.cut:
					default:
						return
					}
				}
			}
		}
		if err != nil {
			select {
			case <-pr.cut:
			default:
				// The peer went away (a node killed): so does this side,
				// as it would without the proxy.
				_ = dst.Close()
			}
			return
		}
	}
}

// cut silences every connection forwarded so far: see proxy.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pr := range p.pairs {
		close(pr.cut)
		_ = pr.server.Close()
	}
	p.pairs = nil
}
