package service

import (
	"strings"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/config"
	"github.com/pubpresence/pubpresence/status"
)

// twoNodes returns an edit of a service's configuration that gives it both
// fakes' addresses, as the two nodes of a cluster.
func twoNodes(f0, f1 *fakeServer, edit func(*config.Config)) func(*config.Config) {
	f1.created = f0.created // one cluster's pubsub: the nodes set up through either stream
	return func(c *config.Config) {
		c.XMPP.Address = f0.srv.Addr()
		c.XMPP.Addresses = []string{f0.srv.Addr(), f1.srv.Addr()}
		c.XMPP.ReconnectMax = config.Duration{Duration: 200 * time.Millisecond}
		edit(c)
	}
}

// TestStreamsOneComponent: a service with two addresses keeps a stream to
// each and is one component across them. A user's presence read on stream
// 1 is published through stream 0 (the first up), with its address looked
// up there. Stream 1 ends: the service stays online and lists the sessions
// through stream 0 at once (the fake lists none), so the user's connection
// leaves the actual node with an offline live event. Stream 1 comes back
// by itself, and a full resync follows. /readyz and the metrics say which
// streams are up all along.
func TestStreamsOneComponent(t *testing.T) {
	f0, f1 := newFakeServer(t), newFakeServer(t)
	rs := trackedServiceOf(t, f0, twoNodes(f0, f1, func(c *config.Config) {
		c.Tracking.Mode = config.TrackRoster // no wait for a grant
	}), f0, f1)
	up := func(i string) float64 { return rs.metric(t, "pubpresence_stream_up", "stream", i) }
	f0.waitFor("both streams up", func() bool { return up("0") == 1 && up("1") == 1 })
	// Either stream may have come up first and served the initial sync;
	// from now on stream 0 is up, and requests go there.
	lists1 := f1.lists.Load()
	if s := rs.st.StreamsSummary(); s != "2 of 2 streams up" {
		t.Errorf("streams %q", s)
	}

	f1.injectPresence(7, "r", "away", 1, 0)
	f1.flush()
	f0.waitFor("the user of stream 1 published", func() bool { return f0.live.Load() == 1 && f0.actual.Load() == 1 })
	if f0.userStats.Load() != 1 || f1.live.Load()+f1.actual.Load()+f1.userStats.Load() != 0 {
		t.Errorf("requests went on stream 1 while stream 0 was up")
	}

	statusPublished := f0.statusPub.Load()
	f1.conn.Close() // stream 1 ends: its node said nothing of its users
	f0.waitFor("the user retracted, with an offline live event", func() bool {
		return f0.retracts.Load() == 1 && f0.live.Load() == 2
	})
	if p := rs.st.Phase(); p != status.Online || f0.statusPub.Load() != statusPublished {
		t.Errorf("phase %s, %d status publishes since the stream ended; want online all along", p, f0.statusPub.Load()-statusPublished)
	}
	if n := rs.metric(t, "pubpresence_tracked_connections"); n != 0 {
		t.Errorf("tracked connections %v after the stream ended", n)
	}
	if rs.metric(t, "pubpresence_reconnects_total") < 1 {
		t.Error("the lost stream is not counted as a reconnect")
	}

	// Stream 1 comes back: a full resync, its list through stream 0.
	lists := f0.lists.Load()
	f1.conn = f1.srv.Conn(t)
	f0.waitFor("stream 1 up again and the resync", func() bool { return up("1") == 1 && f0.lists.Load() > lists })
	if p := rs.st.Phase(); p != status.Online || !rs.st.Ready() {
		t.Errorf("phase %s, ready %v after stream 1 came back", p, rs.st.Ready())
	}
	if n := f1.lists.Load() - lists1; n != 0 {
		t.Errorf("%d session lists asked on stream 1 while stream 0 was up", n)
	}
}

// TestStreamsGrantPerStream: with tracking.mode = "privileged", each stream
// must be granted on its own. Node 1 grants and node 2 does not: the
// service goes online through stream 0, /readyz names the stream that is
// not granted, and that stream is closed and dialled again.
func TestStreamsGrantPerStream(t *testing.T) {
	f0, f1 := newFakeServer(t), newFakeServer(t)
	f0.grant = ejabberdGrant
	rs := trackedService(t, f0, twoNodes(f0, f1, func(c *config.Config) {
		c.Tracking.Mode = config.TrackPrivileged
		c.Tracking.SessionsPoll = config.Duration{}
		// The fake grants with the answer to a stream's first ping: the
		// keepalive pings each stream soon.
		c.XMPP.KeepaliveInterval = config.Duration{Duration: 50 * time.Millisecond}
	}))
	if v := rs.metric(t, "pubpresence_tracking", "way", "privileged"); v != 1 {
		t.Errorf("pubpresence_tracking{way=privileged} = %v, want 1", v)
	}
	f0.waitFor("the problem named, and stream 1 dialled again", func() bool {
		return strings.Contains(rs.st.Problem(), "not granted") && f1.srv.Authenticated() >= 2 && rs.st.Phase() == status.Online
	})
	if p := rs.st.Problem(); !strings.Contains(p, f1.srv.Addr()) {
		t.Errorf("problem %q does not name stream 1's address %s", p, f1.srv.Addr())
	}
	if rs.st.Phase() != status.Online || rs.st.Ready() {
		t.Errorf("phase %s, ready %v: want online, not ready", rs.st.Phase(), rs.st.Ready())
	}
}
