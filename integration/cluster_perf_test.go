//go:build integration

package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/internal/load"
	"github.com/pubpresence/pubpresence/internal/testserver"
)

// The sizing of one pubpresence for an ejabberd cluster
// (docs/ejabberd-cluster.md, "Sizing"): the rows of TestIntegrationPerformance
// against a real two-node cluster, with the users split between the nodes
// and the CPU each process used. It runs only when PUBPRESENCE_PERF is set
// (scripts/perf.sh); nothing here asserts a speed, only that nothing is lost
// and presence/actual is true at the end.
//
//	PUBPRESENCE_PERF_CLUSTER_SIZE=1000    users of the resync rows (default 1000)
//	PUBPRESENCE_PERF_CHANGES=20000        changes of the throughput run
func TestIntegrationClusterPerformance(t *testing.T) {
	perfOnly(t)
	changes := envInt(t, "PUBPRESENCE_PERF_CHANGES", 20000)
	size := envInt(t, "PUBPRESENCE_PERF_CLUSTER_SIZE", 1000)
	for _, way := range []string{"privileged", "roster"} {
		t.Run(way, func(t *testing.T) { clusterPerf(t, way == "privileged", changes, size) })
	}
}

// cpuMeter reads the CPU time (user + system) of pubpresence and of each
// cluster node, to tell whose share of the machine a run took.
type cpuMeter struct {
	svc *service
	cl  *testserver.Cluster
}

// sample returns the CPU time used so far by pubpresence and by the nodes.
func (m cpuMeter) sample(t *testing.T) (svc time.Duration, nodes []time.Duration) {
	t.Helper()
	svc = m.svc.cpu(t)
	for _, n := range m.cl.Nodes {
		g := n.Pid() // a node runs in its own process group
		nodes = append(nodes, procCPU(t, func(_, pgrp int) bool { return pgrp == g }))
	}
	return svc, nodes
}

// cpu returns the CPU time the service's running process has used so far.
func (s *service) cpu(t *testing.T) time.Duration {
	t.Helper()
	s.mu.Lock()
	pid := s.cmd.Process.Pid
	s.mu.Unlock()
	return procCPU(t, func(p, _ int) bool { return p == pid })
}

// procCPU sums utime and stime (/proc/PID/stat) of the processes that
// match.
func procCPU(t *testing.T, match func(pid, pgrp int) bool) time.Duration {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var ticks int64
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid pgrp …: comm may hold spaces, so split
		// after its closing parenthesis.
		rest := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(rest) < 13 {
			continue
		}
		pgrp, _ := strconv.Atoi(rest[2])
		if !match(pid, pgrp) {
			continue
		}
		u, _ := strconv.ParseInt(rest[11], 10, 64)
		s, _ := strconv.ParseInt(rest[12], 10, 64)
		ticks += u + s
	}
	return time.Duration(ticks) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

func clusterPerf(t *testing.T, privileged bool, changes, size int) {
	opts := []testserver.Option{testserver.WithMaxItems(max(10000, 2*size))}
	way := "roster"
	if privileged {
		opts, way = append(opts, testserver.WithPrivilege()), "privileged"
	}
	cl := testserver.StartCluster(t, opts...)
	n1, n2 := cl.Nodes[0], cl.Nodes[1]
	const nUsers, contact = 200, "buddy"
	names := users("p", nUsers)
	rnames := users("r", size)
	if err := cl.CreateUsers(append(append([]string{reader, contact}, names...), rnames...), password); err != nil {
		t.Fatal(err)
	}
	svc := startService(t, n1, withAddresses(cl.Addresses()...), func(o *svcOptions) {
		o.logLevel, o.initLimit, o.keepalive = "info", "300s", "20s"
	})
	stream2 := `pubpresence_stream_up{address="` + n2.ComponentAddr + `",stream="1"}`
	ready := func() {
		t.Helper()
		waitUntil(t, "online with both streams up", func() bool {
			return svc.Ready() == http.StatusOK && svc.Metric(t, stream2) == 1
		})
	}
	ready()
	row := func(measure, value, versus, ratio, goal string) {
		t.Helper()
		t.Logf("PERF | ejabberd cluster (%s) | %s | %s | %s | %s | %s |", way, measure, value, versus, ratio, goal)
	}
	ctx := context.Background()

	// 1. The raw ceiling through node 1, pubpresence stopped: a live event
	// and the actual item per change.
	svc.Stop()
	raw, err := load.Raw(ctx, rawConfig(n1), changeOps(names, n1.Domain, changes))
	if err != nil || raw.Errors > 0 {
		t.Fatalf("raw publisher: %v; %d of %d failed, first %v", err, raw.Errors, raw.Requests, raw.FirstErr)
	}
	rawRate := float64(changes) / raw.Took.Seconds()
	svc.Start()
	ready()

	// 2. Half the users on each node; the contact and the live reader on
	// node 1, so that node 2's users' presence crosses the cluster to
	// reach them, as it does to pubpresence's requests.
	buddy := dial(t, n1, contact, "observer")
	jids := make([]string, nUsers)
	for i, n := range names {
		jids[i] = n + "@" + n1.Domain
	}
	if err := load.Befriend(buddy, jids); err != nil {
		t.Fatal(err)
	}
	live := dial(t, n1, reader, "observer")
	subscribe(t, live, n1, testNodes.Live)
	buddyObs, liveObs := load.NewObserver("contact", buddy), load.NewObserver("live", live)
	fleet := func(names []string, subscribe ...string) *load.Fleet {
		t.Helper()
		half := len(names) / 2
		var parts []*load.Fleet
		for i, part := range [][]string{names[:half], names[half:]} {
			f, err := load.Login(ctx, load.FleetConfig{Addr: cl.Nodes[i].C2SAddr, Domain: n1.Domain, Password: password,
				Users: part, Subscribe: subscribe, Logins: 64, Timeout: 2 * time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			parts = append(parts, f)
		}
		f := load.Join(parts...)
		t.Cleanup(f.Abort)
		return f
	}
	f := fleet(names, n1.Component, buddy.Bare())
	if err := f.Available("load start"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "all tracked", func() bool { return svc.Metric(t, "pubpresence_tracked_connections") == nUsers })
	run := observedRun(t, ctx, f, liveObs, buddyObs)
	warmUp(t, run, nUsers)

	meter := cpuMeter{svc: svc, cl: cl}
	svc0, nodes0 := meter.sample(t)
	began := time.Now()
	thr := run(load.RunConfig{Changes: changes, Drain: 120 * time.Second})
	wall := time.Since(began)
	svc1, nodes1 := meter.sample(t)
	t.Logf("cluster (%s):\n%s", way, thr)
	lv, _ := thr.Stream("live")
	ct, _ := thr.Stream("contact")
	if lv.Lost > 0 || lv.Reordered > 0 {
		t.Errorf("live: %d of %d changes lost, %d reordered", lv.Lost, thr.Sent, lv.Reordered)
	}
	if ct.Lost > 0 || ct.Reordered > 0 {
		// The cluster's delivery to a contact, not pubpresence's: its
		// losses are reported, and make the run wait for the drain.
		t.Logf("contact (the cluster's own delivery): %d of %d changes lost, %d reordered", ct.Lost, thr.Sent, ct.Reordered)
	}
	svcCPU := svc1 - svc0
	// The CPU was spent while the changes flowed: from the first sent to
	// the last received on the live node (the drain after it is idle).
	busy := max(lv.Span, ct.Span)
	t.Logf("cluster (%s): the run took %v, of which the changes flowed for %v", way, wall.Round(time.Millisecond), busy.Round(time.Millisecond))
	perEvent := svcCPU / time.Duration(max(lv.Received, 1))
	row(fmt.Sprintf("throughput, %d changes as fast as sent, users on both nodes", changes), fmt.Sprintf("%.0f/s", lv.Rate()),
		fmt.Sprintf("raw live+actual through node 1 %.0f/s", rawRate), fmt.Sprintf("%.2f", lv.Rate()/rawRate), "≥ 0.9")
	row("  same run: the cluster's own delivery to the contact", fmt.Sprintf("%.0f/s", ct.Rate()), "", "", "")
	row("  same run: pubpresence's CPU per event", fmt.Sprintf("%.1f µs", float64(perEvent)/1e3),
		fmt.Sprintf("%.0f events/s per core", 1/perEvent.Seconds()), "", "")
	row("  same run: CPU used (share of one core while the changes flowed)",
		fmt.Sprintf("pubpresence %.0f %%", 100*svcCPU.Seconds()/busy.Seconds()),
		fmt.Sprintf("node 1 %.0f %%, node 2 %.0f %%", 100*(nodes1[0]-nodes0[0]).Seconds()/busy.Seconds(),
			100*(nodes1[1]-nodes0[1]).Seconds()/busy.Seconds()), "", "")
	// With privileged presence the contact, online, is tracked too.
	tracked := nUsers
	if privileged {
		tracked++
	}
	waitLong(t, "actual to hold every connection", func() bool { return len(actualItems(t, live, n1)) == tracked })
	f.Close()
	_ = buddy.Close()
	waitUntil(t, "the flow's users gone", func() bool { return svc.Metric(t, "pubpresence_tracked_connections") == 0 })

	// 3. Resync of size users, half on each node: warm and cold, against
	// the raw publisher making the cold start's requests.
	began = time.Now()
	rf := fleet(rnames, n1.Component)
	if err := rf.Available("resync"); err != nil {
		t.Fatal(err)
	}
	waitLong(t, "all tracked", func() bool { return svc.Metric(t, "pubpresence_tracked_connections") == float64(size) })
	logins := time.Since(began)
	st := dial(t, n1, reader, "status")
	drainedActual(t, n1, rf, st)
	evs := events(t, st)
	subscribe(t, st, n1, testNodes.Status)
	timeOnline := func() (took, cpu time.Duration) {
		t.Helper()
		begin := time.Now()
		svc.Start()
		c0, _ := meter.sample(t)
		next(t, evs, "init", func(e eventItem) bool { return e.Node == testNodes.Status && statusOf(e) == "init" })
		for {
			select {
			case e := <-evs:
				if e.Node == testNodes.Status && statusOf(e) == "online" {
					took = time.Since(begin)
					c1, _ := meter.sample(t)
					return took, c1 - c0
				}
			case <-time.After(5 * time.Minute):
				t.Fatal("no online within 5 min")
			}
		}
	}
	svc.Stop()
	warm, warmCPU := timeOnline()
	ready()
	drainedActual(t, n1, rf, st)
	svc.Stop()
	raw, err = load.Raw(ctx, rawConfig(n1), coldOps(rnames, n1.Domain))
	if err != nil || raw.Errors > 0 {
		t.Fatalf("raw publisher: %v; %d of %d failed, first %v", err, raw.Errors, raw.Requests, raw.FirstErr)
	}
	cold, coldCPU := timeOnline()
	ready()
	drainedActual(t, n1, rf, st)
	t.Logf("cluster (%s), %d users: logged in and tracked in %v", way, size, logins.Round(time.Millisecond))
	row(fmt.Sprintf("resync %d users on both nodes, warm: start→online", size), fmt.Sprintf("%.2f s", warm.Seconds()),
		fmt.Sprintf("pubpresence CPU %.0f ms (%.0f µs per connection)", float64(warmCPU)/1e6, float64(warmCPU)/1e3/float64(size)), "", "≤ 3 s")
	row(fmt.Sprintf("resync %d users on both nodes, cold: start→online", size), fmt.Sprintf("%.2f s", cold.Seconds()),
		fmt.Sprintf("raw %.2f s; pubpresence CPU %.0f ms", raw.Took.Seconds(), float64(coldCPU)/1e6),
		fmt.Sprintf("%.2f", cold.Seconds()/raw.Took.Seconds()), "≤ 1.2")
}
