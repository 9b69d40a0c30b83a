package component_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/internal/xmpptest"
)

// foreignLog collects what Config.Foreign reports.
type foreignLog struct {
	mu   sync.Mutex
	seen []component.Foreign
}

func (l *foreignLog) add(f component.Foreign) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen = append(l.seen, f)
}

func (l *foreignLog) all() []component.Foreign {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]component.Foreign(nil), l.seen...)
}

// requestID makes c send one IQ and returns its id as the server read it.
func requestID(t *testing.T, c *component.Conn, sc *xmpptest.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	t.Cleanup(cancel)
	goIQ(ctx, c, "get", "pubsub.localhost", "<query xmlns='http://jabber.org/protocol/disco#items'/>")
	return sc.Next(t).Attr("id")
}

// Two connections with one name (ejabberd accepts both): each recognises
// the other's answers, and which of the two streams is older.
func TestForeignAnswers(t *testing.T) {
	srv := newFakeServer(t)
	var logA, logB, logC foreignLog
	a, scA := dial(t, srv, func(c *component.Config) { c.Instance, c.Foreign = "aaaa", logA.add })
	time.Sleep(2 * time.Millisecond) // the streams' start times must differ
	b, scB := dial(t, srv, func(c *component.Config) { c.Instance, c.Foreign = "bbbb", logB.add })
	if !a.Started().Before(b.Started()) {
		t.Fatalf("A started %v, B %v", a.Started(), b.Started())
	}

	idA, idB := requestID(t, a, scA), requestID(t, b, scB)
	answer := func(sc *xmpptest.Conn, id string) {
		_ = sc.Write(fmt.Sprintf("<iq type='result' id='%s' from='pubsub.localhost' to='%s'/>", id, compName))
	}
	answer(scB, idA) // A's answer delivered on B
	answer(scA, idB) // and B's on A
	answer(scA, "purple1234")
	eventually(t, "B to see A's answer", func() bool { return b.Stats().ForeignResults == 1 })
	eventually(t, "A to see B's answer and a stranger's", func() bool { return a.Stats().ForeignResults == 2 })

	if got := logB.all(); len(got) != 1 || got[0] != (component.Foreign{ID: idA, Instance: "aaaa", Older: true}) {
		t.Errorf("B saw %+v, want A's answer from an older stream", got)
	}
	got := logA.all()
	want := []component.Foreign{{ID: idB, Instance: "bbbb", Older: false}, {ID: "purple1234"}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("A saw %+v, want %+v", got, want)
	}

	// A later stream of the same instance (a reconnect) gets a late answer
	// to the earlier stream: unknown, but not another instance's.
	c, scC := dial(t, srv, func(c *component.Config) { c.Instance, c.Foreign = "aaaa", logC.add })
	answer(scC, idA)
	eventually(t, "C to count the late answer", func() bool { return c.Stats().UnknownResults == 1 })
	if s := c.Stats(); s.ForeignResults != 0 || len(logC.all()) != 0 {
		t.Errorf("a late answer of the same instance was taken as foreign: %+v %+v", s, logC.all())
	}
}

func TestNewInstance(t *testing.T) {
	a, b := component.NewInstance(), component.NewInstance()
	if a == b || len(a) != 12 {
		t.Errorf("NewInstance gave %q and %q", a, b)
	}
}

// A session slower than the server fills Inbound and the reader waits:
// the server is then known to be alive, and unanswered pings do not end
// the stream. Once the session reads again and nothing more comes, they do.
func TestKeepaliveReaderBlocked(t *testing.T) {
	t.Parallel()
	srv := newFakeServer(t) // never answers pings
	c, sc := dial(t, srv, keepaliveConfig, func(cfg *component.Config) { cfg.InboundQueue = 1 })
	for i := range 3 {
		_ = sc.Write(fmt.Sprintf("<presence from='u%d@localhost/r' to='%s'/>", i, compName))
	}
	// Several unanswered pings, each older than KeepaliveTimeout.
	eventually(t, "4 unanswered pings", func() bool { return len(pings(sc)) >= 4 })
	if err := c.Err(); err != nil {
		t.Fatalf("stream ended while its reader waited for the session: %v", err)
	}
	for range 3 {
		recv(t, c)
	}
	if err := waitDone(t, c); err == nil {
		t.Fatal("no error")
	}
}
