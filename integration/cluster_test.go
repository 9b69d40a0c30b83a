//go:build integration

package integration

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/internal/testserver"
	"github.com/pubpresence/pubpresence/presence"
	"github.com/pubpresence/pubpresence/watch"
)

// The cluster suite (issue 16): one pubpresence with the component
// addresses of both nodes of a real two-node ejabberd cluster
// (testserver.StartCluster), in both ways presence reaches it: privileged
// presence (each node grants on its own stream and forwards only its own
// users' presence; with ejabberd's HTTP API, on node 1) and the roster way.
// Users on both nodes change presence all along; after each fault the
// truth check (truth_test.go) compares presence/actual, the cluster's
// session list (Cluster.Sessions) and a watcher, and prints a FAULT row.

const (
	clusterChurners = 8 // churning users: even ones on node 1, odd ones on node 2
	// The service's stream to node 2 goes through a proxy, which C3 cuts.
	node2 = 1
)

func TestIntegrationCluster(t *testing.T) {
	for _, way := range []string{"privileged", "roster"} {
		t.Run(way, func(t *testing.T) { clusterFaults(t, way == "privileged") })
	}
}

// clusterFaults runs the suite's faults in order on one cluster.
func clusterFaults(t *testing.T, privileged bool) {
	began := time.Now()
	var opts []testserver.Option
	if privileged {
		opts = append(opts, testserver.WithPrivilege())
	}
	cl := testserver.StartCluster(t, opts...)
	n1, n2 := cl.Nodes[0], cl.Nodes[node2]
	t.Logf("cluster up in %v", time.Since(began).Round(time.Millisecond))
	p := startProxy(t, n2.ComponentAddr)

	// Users: cu000… churn (even ones at home on node 1, odd ones on node
	// 2; one whose node is down logs in on the other); cs0 on node 1 and
	// cs1, cs2 on node 2 stay as the test puts them.
	churners := users("cu", clusterChurners)
	if err := cl.CreateUsers(append([]string{reader, "cs0", "cs1", "cs2"}, churners...), password); err != nil {
		t.Fatal(err)
	}
	svc := startService(t, n1, withAddresses(n1.ComponentAddr, p.Addr()))
	stream2 := `pubpresence_stream_up{address="` + p.Addr() + `",stream="1"}`
	waitUntil(t, "online with both streams up", func() bool {
		return svc.Ready() == http.StatusOK && svc.Metric(t, stream2) == 1
	})
	t.Logf("service online with both streams %v after the cluster", time.Since(began).Round(time.Millisecond))
	home := func(local string) []string {
		i := slices.Index(churners, local)
		if i%2 == 1 {
			return []string{n2.C2SAddr, n1.C2SAddr}
		}
		return []string{n1.C2SAddr, n2.C2SAddr}
	}
	ch := startChurnAt(t, n1, "c", churners, home)
	static := func(addr, local, resource string) {
		t.Helper()
		c := onlineAt(t, n1, addr, local, resource)
		drain(c)
		ch.set(c.JID(), conn{show: presence.Online}, true)
	}
	static(n1.C2SAddr, "cs0", "r")
	static(n2.C2SAddr, "cs1", "r")
	static(n2.C2SAddr, "cs2", "r")
	w := watcher(t, n1)
	// sessions lists the cluster's sessions through node i.
	sessions := func(i int) func() (map[string]bool, error) {
		return func() (map[string]bool, error) {
			jids, err := cl.Sessions(context.Background(), i)
			if err != nil {
				return nil, err
			}
			on := make(map[string]bool)
			for _, j := range jids {
				if strings.HasPrefix(j, "c") {
					on[j] = true
				}
			}
			return on, nil
		}
	}
	// checkVia is the truth check with the reader, the watcher w and the
	// session list on node i; check, on node 1.
	checkVia := func(i int, w *watch.Follower, scenario string, since time.Time) verdict {
		t.Helper()
		v := truthOf(t, cl.Nodes[i], sessions(i), svc, w, ch, since)
		report(t, scenario, n1, v)
		t.Logf("%s: %d connections online", scenario, len(ch.final()))
		if !v.converged {
			t.Fatalf("%s: no convergence: %s", scenario, v.detail)
		}
		return v
	}
	check := func(scenario string, since time.Time) verdict {
		t.Helper()
		return checkVia(0, w, scenario, since)
	}
	way := map[bool]string{true: "privileged", false: "roster"}[privileged]

	time.Sleep(1500 * time.Millisecond)
	ch.halt()
	check("C0 users on both nodes ("+way+")", time.Now())

	// C1: node 2 dies. Nobody gets an unavailable for its users: the
	// service sees its stream end, checks the session list through node 1,
	// and retracts them, with offline on the live node, while online.
	ch.resume()
	time.Sleep(time.Second)
	rd := dial(t, n1, reader, "live")
	subscribe(t, rd, n1, testNodes.Live)
	evs := events(t, rd)
	gone := map[string]bool{"cs1@" + n1.Domain + "/r": true, "cs2@" + n1.Domain + "/r": true}
	killed := time.Now()
	if err := cl.Kill(node2); err != nil {
		t.Fatal(err)
	}
	offline, retracted, notReady := clusterRetracted(t, n1, evs, gone, svc)
	t.Logf("C1 (%s): node 2's users offline on live %v and retracted from actual %v after the kill; /readyz not 200 %d times",
		way, offline.Round(time.Millisecond), retracted.Round(time.Millisecond), notReady)
	if notReady > 0 {
		t.Errorf("the service was not ready %d times while node 1 served it", notReady)
	}
	_ = rd.Abort()
	if code, body := svc.get("/readyz"); code != http.StatusOK || !strings.Contains(body, "1 of 2 streams up") {
		t.Errorf("/readyz with node 2 down: %d %q", code, body)
	}
	ch.set("cs1@"+n1.Domain+"/r", conn{}, false)
	ch.set("cs2@"+n1.Domain+"/r", conn{}, false)
	static(n1.C2SAddr, "cs2", "meanwhile") // a user of node 2 logs in on node 1 meanwhile
	time.Sleep(time.Second)
	ch.halt()
	check("C1 node 2 SIGKILL ("+way+")", killed)

	// C2: node 2 comes back, while the service's stream cannot reach it
	// yet: users log in on node 2 (with privileged presence, node 2 tells
	// nobody), then the stream comes back and the resync finds them.
	ch.resume()
	p.held.Store(true)
	began = time.Now()
	if err := cl.Restart(node2); err != nil {
		t.Fatal(err)
	}
	t.Logf("C2 (%s): node 2 restarted in %v", way, time.Since(began).Round(time.Millisecond))
	static(n2.C2SAddr, "cs1", "r") // logs in on node 2 after its restart
	time.Sleep(time.Second)        // churners who leave come back on node 2
	ch.halt()
	back := time.Now()
	p.held.Store(false)
	waitUntil(t, "stream 2 up again", func() bool { return svc.Metric(t, stream2) == 1 })
	t.Logf("C2 (%s): stream 2 up %v after the proxy let it through", way, time.Since(back).Round(time.Millisecond))
	check("C2 node 2 restarted, stream back after ("+way+")", back)

	// C3: the stream to node 2 is lost while node 2 lives (the proxy
	// drops it silently; node 2 sees its side close and, with privileged
	// presence, tells nobody of its users). The users stop changing while
	// the stream is down: the keepalive notices, the stream comes back,
	// and the resync it starts makes up for what node 2 could not tell.
	ch.resume()
	time.Sleep(500 * time.Millisecond)
	before := strings.Count(readLog(svc), `"disconnected; reconnecting"`)
	cut := time.Now()
	p.cut()
	time.Sleep(time.Second)
	ch.halt()
	waitUntil(t, "stream 2 lost and up again", func() bool {
		return strings.Count(readLog(svc), `"disconnected; reconnecting"`) > before && svc.Metric(t, stream2) == 1
	})
	t.Logf("C3 (%s): stream 2 lost and up again %v after the cut", way, time.Since(cut).Round(time.Millisecond))
	check("C3 stream 2 lost, node 2 alive ("+way+")", cut)

	// C4: the service restarts.
	ch.resume()
	time.Sleep(500 * time.Millisecond)
	svc.Stop()
	svc.Start()
	started := time.Now()
	time.Sleep(2 * time.Second)
	ch.halt()
	check("C4 service restart ("+way+")", started)
	if n := svc.Metric(t, stream2); n != 1 {
		t.Errorf("stream 2 after the restart: %v", n)
	}

	// C5: a second pubpresence with the same addresses stands by, every
	// stream of it closed; the first stays the active one (with
	// privileged presence it is granted again on both nodes, whose grants
	// the second's connections dropped) and true.
	ch.resume()
	const sighting = "took some of this instance's stanzas"
	sightings := strings.Count(readLog(svc), sighting)
	// What the first instance has done so far, counted before the second
	// starts: it acts once the second has been quiet for intruderQuiet
	// (2 s), which can fall before or during the check below.
	regrants := strings.Count(readLog(svc), `another connection with this component name closed`)
	resyncs := svc.Metric(t, `pubpresence_syncs_total{kind="reconcile",result="ok"}`)
	b := startService(t, n1, withAddresses(n1.ComponentAddr, n2.ComponentAddr))
	startedB := time.Now()
	waitUntil(t, "the second instance to stand by", func() bool {
		code, body := b.get("/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "standby")
	})
	t.Logf("C5 (%s): the second instance stood by %v after it started", way, time.Since(startedB).Round(time.Millisecond))
	time.Sleep(time.Second)
	ch.halt()
	check("C5 a second instance stands by ("+way+")", startedB)
	if b.Logged(`"message":"online"`) {
		t.Errorf("the second instance went online:\n%s", b.LogTail(30))
	}
	if n := b.Metric(t, `pubpresence_stream_up{address="`+n2.ComponentAddr+`",stream="1"}`); n != 0 {
		t.Errorf("the standby keeps its stream to node 2 up")
	}
	// Once the second has been quiet for a while the first resyncs every
	// user; with privileged presence it is first granted again on every
	// node (the second's connections dropped the grants). Wait for that,
	// so that the next fault does not fall into it.
	b.Stop()
	waitUntil(t, "the first instance to act on the second's leaving", func() bool {
		if strings.Count(readLog(svc), sighting) == sightings {
			return true // it never saw the second's stanzas: nothing to act on
		}
		if privileged {
			return strings.Count(readLog(svc), `another connection with this component name closed`) > regrants
		}
		return svc.Metric(t, `pubpresence_syncs_total{kind="reconcile",result="ok"}`) > resyncs
	})
	// Requests whose answers went to the second instance fail only after
	// request_timeout (10 s here), and their repair follows: let that pass
	// too, so that it does not fall into the next fault.
	if d := 12*time.Second - time.Since(startedB); d > 0 {
		time.Sleep(d)
	}
	waitUntil(t, "online with both streams up", func() bool {
		return svc.Ready() == http.StatusOK && svc.Metric(t, stream2) == 1
	})

	// C6: node 2 is stopped cleanly (SIGTERM). ejabberd sends no
	// unavailable for its users then either: as C1, then node 2 starts
	// again.
	ch.resume()
	time.Sleep(time.Second)
	rd = dial(t, n1, reader, "live6")
	subscribe(t, rd, n1, testNodes.Live)
	evs = events(t, rd)
	stopped := time.Now()
	if err := cl.Stop(node2); err != nil {
		t.Fatal(err)
	}
	stopTook := time.Since(stopped)
	offline, retracted, notReady = clusterRetracted(t, n1, evs, map[string]bool{"cs1@" + n1.Domain + "/r": true}, svc)
	t.Logf("C6 (%s): node 2 stopped in %v; its users offline on live %v and retracted from actual %v after the stop began; /readyz not 200 %d times",
		way, stopTook.Round(time.Millisecond), offline.Round(time.Millisecond), retracted.Round(time.Millisecond), notReady)
	if notReady > 0 {
		t.Errorf("the service was not ready %d times while node 1 served it", notReady)
	}
	_ = rd.Abort()
	ch.set("cs1@"+n1.Domain+"/r", conn{}, false)
	time.Sleep(time.Second)
	ch.halt()
	check("C6 node 2 stopped cleanly ("+way+")", stopped)
	ch.resume()
	if err := cl.Restart(node2); err != nil {
		t.Fatal(err)
	}
	back = time.Now()
	static(n2.C2SAddr, "cs1", "r")
	waitUntil(t, "stream 2 up again", func() bool { return svc.Metric(t, stream2) == 1 })
	time.Sleep(time.Second)
	ch.halt()
	check("C6 node 2 started again ("+way+")", back)

	// C7: node 1 dies: the first address, where requests go and, with
	// privileged presence, ejabberd's API the test configured. Requests go
	// on node 2's stream, the reconcile lists the sessions with admin
	// commands there, and node 1's users are retracted. The reader, the
	// watcher and the session list are on node 2 from here.
	w2 := watcher(t, n2)
	ch.resume()
	time.Sleep(time.Second)
	rd = dial(t, n2, reader, "live7")
	subscribe(t, rd, n2, testNodes.Live)
	evs = events(t, rd)
	gone = map[string]bool{"cs0@" + n1.Domain + "/r": true, "cs2@" + n1.Domain + "/meanwhile": true}
	killed = time.Now()
	if err := cl.Kill(0); err != nil {
		t.Fatal(err)
	}
	offline, retracted, notReady = clusterRetracted(t, n2, evs, gone, svc)
	t.Logf("C7 (%s): node 1's users offline on live %v and retracted from actual %v after the kill; /readyz not 200 %d times",
		way, offline.Round(time.Millisecond), retracted.Round(time.Millisecond), notReady)
	if notReady > 0 {
		t.Errorf("the service was not ready %d times while node 2 served it", notReady)
	}
	_ = rd.Abort()
	if code, body := svc.get("/readyz"); code != http.StatusOK || !strings.Contains(body, "1 of 2 streams up") || !strings.Contains(body, n1.ComponentAddr) {
		t.Errorf("/readyz with node 1 down: %d %q", code, body)
	}
	for j := range gone {
		ch.set(j, conn{}, false)
	}
	static(n2.C2SAddr, "cs0", "meanwhile") // a user of node 1 logs in on node 2 meanwhile
	time.Sleep(time.Second)
	ch.halt()
	checkVia(node2, w2, "C7 node 1 SIGKILL ("+way+")", killed)

	// C8: node 1 comes back; a user logs in on it before its stream is up.
	ch.resume()
	if err := cl.Restart(0); err != nil {
		t.Fatal(err)
	}
	back = time.Now()
	static(n1.C2SAddr, "cs2", "back")
	stream1 := `pubpresence_stream_up{address="` + n1.ComponentAddr + `",stream="0"}`
	waitUntil(t, "stream 1 up again", func() bool { return svc.Metric(t, stream1) == 1 })
	t.Logf("C8 (%s): stream 1 up %v after node 1 was back", way, time.Since(back).Round(time.Millisecond))
	time.Sleep(time.Second)
	ch.halt()
	checkVia(node2, w2, "C8 node 1 restarted ("+way+")", back)
}

// clusterRetracted waits until every connection of gone has had an offline
// event on the live node and is no longer on the actual node, and returns
// how long after now each took; meanwhile it counts the times /readyz was
// not 200.
func clusterRetracted(t *testing.T, srv *testserver.Server, evs <-chan eventItem, gone map[string]bool, svc *service) (offline, retracted time.Duration, notReady int) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(wait)
	left := make(map[string]bool)
	for j := range gone {
		left[j] = true
	}
	rd := dial(t, srv, reader, fmt.Sprintf("actual%d", start.UnixNano()))
	defer rd.Abort()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for offline == 0 || retracted == 0 {
		select {
		case e, ok := <-evs:
			if !ok {
				t.Fatal("live events ended")
			}
			if e.Node == testNodes.Live && !e.Retract && left[e.ID] && userOf(t, e).Show == presence.Offline {
				delete(left, e.ID)
				if len(left) == 0 {
					offline = time.Since(start)
				}
			}
		case <-tick.C:
			if svc.Ready() != http.StatusOK {
				notReady++
			}
			if retracted == 0 {
				items, _, err := actualOf(rd, srv)
				if err == nil && !slices.ContainsFunc(keys(gone), func(j string) bool { _, ok := items[j]; return ok }) {
					retracted = time.Since(start)
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("after %v: no offline event for %v, retracted %v", wait, left, retracted)
			}
		}
	}
	return offline, retracted, notReady
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
