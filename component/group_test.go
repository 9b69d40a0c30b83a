package component_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/internal/xmpptest"
)

// dialGroup dials one stream of g to srv, as dial does.
func dialGroup(t *testing.T, srv *xmpptest.Server, g *component.Group, foreign *foreignLog) (*component.Conn, *xmpptest.Conn) {
	t.Helper()
	return dial(t, srv, func(c *component.Config) {
		c.Group = g
		if foreign != nil {
			c.Foreign = foreign.add
		}
	})
}

// startTo starts a request to to on c and returns it with the request as
// the server read it.
func startTo(t *testing.T, c *component.Conn, sc *xmpptest.Conn, to string) (*component.Call, *xmpptest.Element) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	call, err := c.Start(ctx, "get", to, []byte("<ping xmlns='urn:xmpp:ping'/>"))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return call, sc.Next(t)
}

// Two streams of one Group (one per node of a cluster): an answer is
// matched to its request on whichever stream it arrives, as ejabberd sends
// a user's answer on the stream of the user's node.
func TestGroupAnswerOnOtherStream(t *testing.T) {
	node1, node2 := newFakeServer(t), newFakeServer(t)
	g := component.NewGroup(compName, "")
	var logA, logB foreignLog
	a, scA := dialGroup(t, node1, g, &logA)
	b, scB := dialGroup(t, node2, g, &logB)

	// A ping sent on A to a user of node 2 is answered on B; one sent on
	// B to node 1's server is answered on A; one on A to the server on A.
	toBob, reqBob := startTo(t, a, scA, "bob@localhost/b2")
	toSrv, reqSrv := startTo(t, b, scB, "localhost")
	toPubsub, reqPubsub := startTo(t, a, scA, "pubsub.localhost")
	if !strings.HasPrefix(reqBob.Attr("id"), g.Instance()+".") || !strings.HasPrefix(reqSrv.Attr("id"), g.Instance()+".") {
		t.Errorf("request ids %q, %q do not carry the group's instance %q", reqBob.Attr("id"), reqSrv.Attr("id"), g.Instance())
	}
	if g.Pending() != 3 {
		t.Errorf("Pending = %d, want 3", g.Pending())
	}
	_ = scB.Write(xmpptest.IQAnswer(reqBob, "result", "<bob/>"))
	_ = scA.Write(xmpptest.IQAnswer(reqSrv, "result", "<srv/>"))
	_ = scA.Write(xmpptest.IQAnswer(reqPubsub, "result", "<pubsub/>"))
	for _, c := range []struct {
		call *component.Call
		want string
	}{{toBob, "<bob/>"}, {toSrv, "<srv/>"}, {toPubsub, "<pubsub/>"}} {
		waitCall(t, c.call)
		if inner, err := c.call.Result(); err != nil || string(inner) != c.want {
			t.Errorf("Result = %q, %v, want %s", inner, err, c.want)
		}
	}
	for name, c := range map[string]*component.Conn{"A": a, "B": b} {
		if s := c.Stats(); s.UnknownResults != 0 || s.ForeignResults != 0 {
			t.Errorf("%s: Stats = %+v, want no unknown or foreign answer", name, s)
		}
	}
	// The answer must come from where the request went, whatever stream.
	stray, req := startTo(t, a, scA, "bob@localhost/b2")
	_ = scB.Write("<iq type='result' id='" + req.Attr("id") + "' from='mallory@localhost/m' to='" + compName + "'/>")
	eventually(t, "B to count the answer from the wrong address", func() bool { return b.Stats().UnknownResults == 1 })
	notDone(t, stray)
	stray.Abandon()
	if len(logA.all())+len(logB.all()) != 0 {
		t.Errorf("foreign answers reported: %+v %+v", logA.all(), logB.all())
	}
	if g.Pending() != 0 {
		t.Errorf("Pending = %d after every call ended", g.Pending())
	}
}

// The end of one stream of a Group fails the requests it sent, at once and
// with ErrClosed, and only those: the other stream's go on. A late answer
// to a failed one, on the other stream, is unknown but not foreign; an
// answer to another instance's request is foreign, and older or not by the
// group's start.
func TestGroupStreamEndFailsOwnCalls(t *testing.T) {
	node1, node2 := newFakeServer(t), newFakeServer(t)
	g := component.NewGroup(compName, "aaaa")
	var logA, logB foreignLog
	a, scA := dialGroup(t, node1, g, &logA)
	b, scB := dialGroup(t, node2, g, &logB)
	a1, reqA1 := startTo(t, a, scA, "bob@localhost/b2")
	a2, _ := startTo(t, a, scA, "pubsub.localhost")
	b1, reqB1 := startTo(t, b, scB, "alice@localhost/a1")

	began := time.Now()
	scA.Close() // node 1's connection drops
	for _, call := range []*component.Call{a1, a2} {
		waitCall(t, call)
		if _, err := call.Result(); !errors.Is(err, component.ErrClosed) || !strings.Contains(err.Error(), "without closing the stream") {
			t.Errorf("A's call after A ended: %v, want ErrClosed saying why", err)
		}
	}
	t.Logf("A's calls failed %v after its connection closed", time.Since(began).Round(time.Microsecond))
	if _, err := a.Start(context.Background(), "get", "localhost", nil); !errors.Is(err, component.ErrClosed) {
		t.Errorf("Start on the ended A = %v, want ErrClosed", err)
	}
	notDone(t, b1)
	if b.Err() != nil {
		t.Fatalf("B ended with A: %v", b.Err())
	}

	// B still works: its call, and a new one.
	_ = scB.Write(xmpptest.IQAnswer(reqB1, "result", "<b1/>"))
	waitCall(t, b1)
	if inner, err := b1.Result(); err != nil || string(inner) != "<b1/>" {
		t.Errorf("b1 = %q, %v", inner, err)
	}
	b2, reqB2 := startTo(t, b, scB, "localhost")
	_ = scB.Write(xmpptest.IQAnswer(reqB2, "result", ""))
	waitCall(t, b2)

	// bob's late answer to A's ping arrives on B; then another instance's
	// answers: one whose group is older than ours, one younger.
	_ = scB.Write(xmpptest.IQAnswer(reqA1, "result", "<late/>"))
	stamp := func(d time.Duration) string {
		return strconv.FormatInt(time.Now().Add(d).UnixNano(), 36)
	}
	_ = scB.Write("<iq type='result' id='bbbb." + stamp(-time.Hour) + "-1' from='localhost' to='" + compName + "'/>")
	_ = scB.Write("<iq type='result' id='cccc." + stamp(time.Hour) + "-1' from='localhost' to='" + compName + "'/>")
	eventually(t, "B to count three unknown answers", func() bool { return b.Stats().UnknownResults == 3 })
	got := logB.all()
	if len(got) != 2 || got[0].Instance != "bbbb" || !got[0].Older || got[1].Instance != "cccc" || got[1].Older {
		t.Errorf("B reported foreign %+v, want bbbb (older) and cccc (younger), and not the late answer to A", got)
	}
	if s := b.Stats(); s.ForeignResults != 2 {
		t.Errorf("B Stats = %+v, want 2 foreign", s)
	}
	if g.Pending() != 0 {
		t.Errorf("Pending = %d", g.Pending())
	}

	// A's reconnect joins the group again, with the same instance.
	a2nd, scA2 := dialGroup(t, node1, g, &logA)
	call, req := startTo(t, a2nd, scA2, "pubsub.localhost")
	if !strings.HasPrefix(req.Attr("id"), "aaaa.") {
		t.Errorf("id %q after the reconnect", req.Attr("id"))
	}
	_ = scB.Write(xmpptest.IQAnswer(req, "result", "<via-b/>"))
	waitCall(t, call)
	if inner, err := call.Result(); err != nil || string(inner) != "<via-b/>" {
		t.Errorf("call on the new A answered on B = %q, %v", inner, err)
	}
}

func TestGroupConfigMismatch(t *testing.T) {
	srv := newFakeServer(t)
	g := component.NewGroup(compName, "aaaa")
	for name, edit := range map[string]func(*component.Config){
		"other name":     func(c *component.Config) { c.Name = "other.localhost" },
		"other instance": func(c *component.Config) { c.Instance = "bbbb" },
	} {
		cfg := config(srv)
		cfg.Group = g
		edit(&cfg)
		if c, err := component.Dial(context.Background(), cfg); err == nil {
			_ = c.Close()
			t.Errorf("%s: Dial succeeded", name)
		} else if !strings.Contains(err.Error(), "Group") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if n := srv.Accepted(); n != 0 {
		t.Errorf("the server accepted %d connections", n)
	}
	cfg := config(srv)
	cfg.Group, cfg.Instance = g, "aaaa"
	c, err := component.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
}
