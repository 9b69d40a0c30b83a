//go:build integration

package integration

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/internal/c2s"
	"github.com/pubpresence/pubpresence/internal/ejabberdapi"
	"github.com/pubpresence/pubpresence/internal/load"
	"github.com/pubpresence/pubpresence/internal/testserver"
	"github.com/pubpresence/pubpresence/internal/xmpp"
	"github.com/pubpresence/pubpresence/presence"
)

// The performance comparison (issue 6). Each measure is a ratio between
// pubpresence and the server's own limit, taken in the same run on the
// same server. It runs only when PUBPRESENCE_PERF is set; scripts/perf.sh
// runs it and prints its "PERF |" rows as one table. The tests assert
// correctness (nothing lost, actual true); speed is reported, not asserted.
//
//	PUBPRESENCE_PERF=1                    throughput, latency, flood restart
//	PUBPRESENCE_PERF_SIZES=1000,10000     resync sizes (default 1000)
//	PUBPRESENCE_PERF_CHANGES=20000        changes of the throughput run
//	PUBPRESENCE_PERF_ROUNDS=3             rounds of warm and cold starts per resync
//	                                      row (default 3 up to 1000 users, 1 above)
//	PUBPRESENCE_PERF_LOG=1                the resync rows print the service's log lines (=debug: at debug)
//	PUBPRESENCE_PERF_FLOW_SIZES=10000     throughput rows with that many users, both modes
//	PUBPRESENCE_PERF_NO_FLOW=1            leave out the 200-user flow row
//	PUBPRESENCE_PERF_KEEPALIVE=20s        the service's xmpp.keepalive_timeout
//	PUBPRESENCE_PERF_PURGE=0|1            sync.purge_stale off or on for both servers
//	                                      (default: on for Prosody, off for ejabberd,
//	                                      as docs/operations.md advises)
//	PUBPRESENCE_PERF_ROSTER_ON_DISC=1     ejabberd: keep its default roster storage
//	                                      (dets) instead of the harness's RAM copy
//	                                      (testserver.WithRosterOnDisc; docs/ejabberd.md)
//	PUBPRESENCE_PERF_PROSODY_GC=generational  Prosody, resync and flow rows: Lua's generational
//	                                      garbage collector (testserver.WithGenerationalGC;
//	                                      docs/prosody.md)
//	PUBPRESENCE_PERF_ERL_FLAGS="+sbwt none"  ejabberd, resync and flow rows: more flags for the
//	                                      Erlang VM (testserver.WithErlangFlags)
func TestIntegrationPerformance(t *testing.T) {
	perfOnly(t)
	sizes := []int{1000}
	if s := os.Getenv("PUBPRESENCE_PERF_SIZES"); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 || n > load.MaxUsers {
				t.Fatalf("PUBPRESENCE_PERF_SIZES: bad size %q", f)
			}
			sizes = append(sizes, n)
		}
	}
	changes := envInt(t, "PUBPRESENCE_PERF_CHANGES", 20000)
	var flows []int
	if s := os.Getenv("PUBPRESENCE_PERF_FLOW_SIZES"); s != "" {
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 || n > load.MaxUsers {
				t.Fatalf("PUBPRESENCE_PERF_FLOW_SIZES: bad size %q", f)
			}
			flows = append(flows, n)
		}
	}
	eachServer(t, func(t *testing.T, start startFunc) {
		if os.Getenv("PUBPRESENCE_PERF_NO_FLOW") == "" {
			t.Run("flow", func(t *testing.T) { perfFlow(t, start, changes, flowUsers, "roster") })
		}
		for _, n := range flows {
			// The throughput row with n users online, in both modes.
			t.Run(fmt.Sprint("flow", n), func(t *testing.T) {
				t.Run("roster", func(t *testing.T) { perfFlow(t, start, changes, n, "roster") })
				t.Run("privileged", func(t *testing.T) { perfFlow(t, privileged(start), changes, n, "privileged") })
			})
		}
		for _, n := range sizes {
			// Both tracking modes (docs/tracking.md): in "roster" every
			// user subscribes to the component at login, which costs the
			// server a roster write per user and direction; in
			// "privileged" the rosters stay empty.
			t.Run(fmt.Sprint("resync", n), func(t *testing.T) {
				t.Run("roster", func(t *testing.T) { perfResync(t, start, n, "roster") })
				t.Run("privileged", func(t *testing.T) { perfResync(t, privileged(start), n, "privileged") })
			})
		}
	})
}

func envInt(t *testing.T, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("%s: bad number %q", name, s)
	}
	return n
}

// perfRow prints one row of the table scripts/perf.sh assembles.
func perfRow(t *testing.T, srv *testserver.Server, measure, value, versus, ratio, goal string) {
	t.Helper()
	t.Logf("PERF | %s | %s | %s | %s | %s | %s |", srv.Kind, measure, value, versus, ratio, goal)
}

// perfService starts pubpresence as an operator would run it: info logs,
// no periodic reconciliation, patient timeouts for large resyncs. exclude
// is tracking.exclude (the test's contacts: with privileged presence
// every user is tracked).
func perfService(t *testing.T, srv *testserver.Server, exclude ...string) *service {
	keepalive := "20s"
	if k := os.Getenv("PUBPRESENCE_PERF_KEEPALIVE"); k != "" {
		if _, err := time.ParseDuration(k); err != nil {
			t.Fatalf("PUBPRESENCE_PERF_KEEPALIVE: %v", err)
		}
		keepalive = k
	}
	level := "info"
	if os.Getenv("PUBPRESENCE_PERF_LOG") == "debug" {
		level = "debug"
	}
	purge := srv.Kind == testserver.Prosody
	switch p := os.Getenv("PUBPRESENCE_PERF_PURGE"); p {
	case "0", "1":
		purge = p == "1"
	case "":
	default:
		t.Fatalf("PUBPRESENCE_PERF_PURGE=%q: 0 or 1", p)
	}
	svc := startService(t, srv, func(o *svcOptions) {
		o.logLevel, o.initLimit, o.keepalive, o.exclude, o.purge = level, "300s", keepalive, exclude, purge
	})
	waitUntil(t, "readyz", func() bool { return svc.Ready() == http.StatusOK })
	return svc
}

// perfGrace is the service's sync.probe_grace in these tests (svcOptions).
const perfGrace = 500 * time.Millisecond

// flowUsers is the users of the flow row: throughput, latency and the
// restart under a flood.
const flowUsers = 200

// perfFlow measures throughput with nUsers users online; with flowUsers,
// also latency and the restart under a flood. mode is as perfResync's.
func perfFlow(t *testing.T, start startFunc, changes, nUsers int, mode string) {
	srv := start(t, append(perfServerOptions(t), testserver.WithMaxItems(max(10000, 2*nUsers)))...)
	if got := map[bool]string{true: "privileged", false: "roster"}[srv.Privileged()]; got != mode {
		t.Fatalf("mode %s on a server that leads to %s", mode, got)
	}
	names := users("p", nUsers)
	createUsers(t, srv, names...)
	// One contact per flowUsers users: a contact of 10 000 users slowed
	// Prosody's logins to 9 a second (its roster), a cost of the test's,
	// not of presence delivery.
	contacts := users("buddy", max(1, nUsers/flowUsers))
	createUsers(t, srv, contacts...)
	var exclude []string
	for _, c := range contacts {
		exclude = append(exclude, c+"@"+srv.Domain)
	}
	svc := perfService(t, srv, exclude...)
	ctx := context.Background()

	// 1. The raw ceiling: the same requests pubpresence makes for each
	// change (a live event and the actual item), with nothing else in
	// the way, on the component stream while pubpresence is stopped.
	svc.Stop()
	ops := changeOps(names, srv.Domain, changes)
	raw, err := load.Raw(ctx, rawConfig(srv), ops)
	if err != nil {
		t.Fatal(err)
	}
	if raw.Errors > 0 {
		t.Fatalf("raw publisher: %d of %d requests failed, first: %v", raw.Errors, raw.Requests, raw.FirstErr)
	}
	rawRate := float64(changes) / raw.Took.Seconds()
	t.Logf("%s raw: %d changes (%d requests) in %v: %.0f changes/s", srv.Kind, changes, raw.Requests, raw.Took, rawRate)
	// And the ceiling of the live node alone: events with no state kept.
	var liveOps []load.RawOp
	for i := 0; i < len(ops); i += 2 {
		liveOps = append(liveOps, ops[i])
	}
	rawLive, err := load.Raw(ctx, rawConfig(srv), liveOps)
	if err != nil || rawLive.Errors > 0 {
		t.Fatalf("raw live publisher: %v; %d of %d failed, first %v", err, rawLive.Errors, rawLive.Requests, rawLive.FirstErr)
	}
	t.Logf("%s raw live only: %d events in %v: %.0f/s", srv.Kind, changes, rawLive.Took, rawLive.Rate())
	svc.Start()
	// It retracts the raw publisher's items first (one per user: 10 000
	// took ejabberd over 30 s).
	waitLong(t, "readyz", func() bool { return svc.Ready() == http.StatusOK })

	// 2. The fleet, contacts subscribed to every user (user i to contact
	// i mod len), and a watcher of the live node.
	buddies := make([]*c2s.Client, len(contacts))
	bareContacts := make([]string, len(contacts))
	for i, c := range contacts {
		buddies[i] = dial(t, srv, c, "observer")
		bareContacts[i] = buddies[i].Bare()
	}
	jids := make([]string, nUsers)
	for i, n := range names {
		jids[i] = n + "@" + srv.Domain
	}
	bctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if err := load.BefriendEvery(bctx, buddies, jids); err != nil {
		t.Fatal(err)
	}
	live := dial(t, srv, reader, "observer")
	subscribe(t, live, srv, testNodes.Live)
	// The observers read their sessions' stanzas from now on, for every run.
	buddyObs, liveObs := load.NewObserver("contact", buddies[0], buddies[1:]...), load.NewObserver("live", live)
	var subscribeTo []string
	if mode == "roster" {
		subscribeTo = append(subscribeTo, srv.Component)
	}
	t0 := time.Now()
	f, err := load.Login(ctx, load.FleetConfig{Addr: srv.C2SAddr, Domain: srv.Domain, Password: password,
		Users: names, Subscribe: subscribeTo, Contacts: bareContacts, Logins: 64, Timeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Abort)
	if err := f.Available("load start"); err != nil {
		t.Fatal(err)
	}
	waitLong(t, "all tracked", func() bool { return svc.Metric(t, "pubpresence_tracked_connections") == float64(nUsers) })
	t.Logf("%s, %d users, %s: logged in and tracked in %v", srv.Kind, nUsers, mode, time.Since(t0).Round(time.Millisecond))
	if way := svc.Metric(t, `pubpresence_tracking{way="`+mode+`"}`); way != 1 {
		t.Fatalf("pubpresence_tracking{way=%q} is %v: the service does not track in the mode of this row", mode, way)
	}

	// run sends the changes of cfg, timed by both observers; drive also
	// requires every change to have arrived, in order.
	run := observedRun(t, ctx, f, liveObs, buddyObs)
	drive := func(cfg load.RunConfig) load.Report {
		t.Helper()
		rep := run(cfg)
		t.Logf("%s:\n%s", srv.Kind, rep)
		for _, s := range rep.Streams {
			if s.Lost > 0 || s.Reordered > 0 {
				t.Errorf("%s: %d of %d changes lost, %d reordered", s.Name, s.Lost, rep.Sent, s.Reordered)
			}
		}
		return rep
	}
	// Warm up until one change of every user reaches both observers: the
	// contact's subscriptions settle a while after the logins (ejabberd
	// delivered a quarter of the first changes late or not at all).
	warmUp(t, run, nUsers)
	if nUsers != flowUsers {
		thr := drive(load.RunConfig{Changes: changes, Drain: 120 * time.Second})
		lv, _ := thr.Stream("live")
		ct, _ := thr.Stream("contact")
		what := fmt.Sprintf("throughput, %d users, %s, %d changes as fast as sent", nUsers, mode, changes)
		perfRow(t, srv, what, fmt.Sprintf("%.0f/s", lv.Rate()),
			fmt.Sprintf("raw live+actual %.0f/s", rawRate), fmt.Sprintf("%.2f", lv.Rate()/rawRate), "≥ 0.9")
		perfRow(t, srv, "  same run, versus the live node alone", fmt.Sprintf("%.0f/s", lv.Rate()),
			fmt.Sprintf("raw live %.0f/s", rawLive.Rate()), fmt.Sprintf("%.2f", lv.Rate()/rawLive.Rate()), "")
		perfRow(t, srv, fmt.Sprintf("  same run: the server's own delivery to %d contacts of %d users each", len(contacts), flowUsers),
			fmt.Sprintf("%.0f/s", ct.Rate()), "", fmt.Sprintf("%.2f", lv.Rate()/ct.Rate()), "")
		drainedActual(t, srv, f, live)
		return
	}
	lat := drive(load.RunConfig{Rate: 200, Duration: 10 * time.Second, Drain: 20 * time.Second})
	lv, _ := lat.Stream("live")
	ct, _ := lat.Stream("contact")
	perfRow(t, srv, "latency p50, 200 changes/s", rd(lv.P50), "contact "+rd(ct.P50), ratio(lv.P50, ct.P50), "")
	perfRow(t, srv, "latency p99, 200 changes/s", rd(lv.P99), "contact "+rd(ct.P99), ratio(lv.P99, ct.P99), "≤ 2")

	thr := drive(load.RunConfig{Changes: changes, Drain: 120 * time.Second})
	lv, _ = thr.Stream("live")
	ct, _ = thr.Stream("contact")
	perfRow(t, srv, fmt.Sprintf("throughput, %d changes as fast as sent", changes), fmt.Sprintf("%.0f/s", lv.Rate()),
		fmt.Sprintf("raw live+actual %.0f/s", rawRate), fmt.Sprintf("%.2f", lv.Rate()/rawRate), "≥ 0.9")
	perfRow(t, srv, "  same run, versus the live node alone", fmt.Sprintf("%.0f/s", lv.Rate()),
		fmt.Sprintf("raw live %.0f/s", rawLive.Rate()), fmt.Sprintf("%.2f", lv.Rate()/rawLive.Rate()), "")
	perfRow(t, srv, "  same run: the server's own delivery to the contact", fmt.Sprintf("%.0f/s", ct.Rate()), "", "", "")
	drainedActual(t, srv, f, live)

	// 3. A restart under an unbounded flood: 100 000 changes written as
	// fast as the sockets take them, pubpresence restarted meanwhile.
	perfFloodRestart(t, srv, svc, f)
}

func rawConfig(srv *testserver.Server) load.RawConfig {
	return load.RawConfig{Addr: srv.ComponentAddr, Name: srv.Component, Secret: srv.Secret, Service: srv.Pubsub, WithIP: true}
}

// drainedActual waits until presence/actual holds the fleet's last
// presence, one item per session.
func drainedActual(t *testing.T, srv *testserver.Server, f *load.Fleet, cl *c2s.Client) {
	t.Helper()
	var items []presence.Conn
	// Under a login storm of 10 000 the server times some requests out
	// (Prosody: publishes and user-stats after 10 s) and the service
	// repairs them with a resync; that takes minutes on a busy server.
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		items = actualItems(t, cl, srv)
		if len(items) == f.Len() {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("actual holds %d items, want %d", len(items), f.Len())
	ended := f.Ended()
	t.Errorf("%d of the fleet's %d sessions have ended", len(ended), f.Len())
	n := 0
	for jid, err := range ended {
		if n++; n > 10 {
			break
		}
		t.Logf("session %s ended: %v", jid, err)
	}
}

func perfFloodRestart(t *testing.T, srv *testserver.Server, svc *service, f *load.Fleet) {
	const flood = 100000
	// The status reader logs in first: a server busy with the flood takes
	// long to log anyone in (Prosody: over 30 s).
	st := dial(t, srv, reader, "status")
	evs := events(t, st)
	subscribe(t, st, srv, testNodes.Status)
	r, err := load.NewRun(load.RunConfig{Changes: flood})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	var sent load.Report
	go func() {
		defer wg.Done()
		sent, _ = r.Drive(context.Background(), f)
	}()
	time.Sleep(500 * time.Millisecond)
	svc.Kill()
	begin := time.Now()
	svc.Start()
	// The subscription delivered the killed process's last item (online)
	// already, or will: wait for the new process's init, then online.
	// A server busy with the flood takes long to take even init (Prosody
	// reads its 200 flooding sockets and the component's in turn).
	var initAfter time.Duration
	for want := "init"; want != ""; {
		select {
		case e, ok := <-evs:
			if !ok {
				t.Fatal("status reader ended")
			}
			if e.Node != testNodes.Status || statusOf(e) != want {
				continue
			}
			if want == "init" {
				initAfter, want = time.Since(begin), "online"
			} else {
				want = ""
			}
		case <-time.After(5 * time.Minute):
			t.Fatalf("no %s within 5 min of the restart", want)
		}
	}
	took := time.Since(begin)
	wg.Wait()
	// The flood is through once the events stop coming and nothing is
	// queued (the depth is sampled every 5 s).
	last, quiet := -1.0, 0
	waitLong(t, "the flood published", func() bool {
		time.Sleep(time.Second)
		n := svc.Metric(t, `pubpresence_presence_events_total{type="available"}`)
		if n == last && svc.Metric(t, "pubpresence_publish_queue_depth") == 0 {
			quiet++
		} else {
			quiet = 0
		}
		last = n
		return quiet >= 6
	})
	through := time.Since(begin)
	dropped := svc.Metric(t, "pubpresence_live_dropped_total")
	perfRow(t, srv, fmt.Sprintf("restart during a flood of %d changes: start→online", flood),
		fmt.Sprintf("%.2f s", took.Seconds()), fmt.Sprintf("init after %.2f s; written in %.1f s, all published %.0f s after the restart; %0.f live events dropped",
			initAfter.Seconds(), sent.SendTook.Seconds(), (through-6*time.Second).Seconds(), dropped), "", "")
	drainedActual(t, srv, f, st)
}

// perfResync measures start → online with n users connected, warm and
// cold, against a raw publisher making the cold start's requests. mode is
// the tracking mode start's server leads to: "roster" (the users subscribe
// to the component) or "privileged" (start grants privileged presence;
// the users subscribe to nothing).
func perfResync(t *testing.T, start startFunc, n int, mode string) {
	opts := append(perfServerOptions(t), testserver.WithMaxItems(max(10000, 2*n)))
	if os.Getenv("PUBPRESENCE_PERF_ROSTER_ON_DISC") == "1" {
		opts = append(opts, testserver.WithRosterOnDisc())
	}
	srv := start(t, opts...)
	if got := map[bool]string{true: "privileged", false: "roster"}[srv.Privileged()]; got != mode {
		t.Fatalf("mode %s on a server that leads to %s", mode, got)
	}
	names := users("r", n)
	createUsers(t, srv, names...)
	svc := perfService(t, srv)
	ctx := context.Background()
	var subscribeTo []string
	if mode == "roster" {
		subscribeTo = []string{srv.Component}
	}
	t0 := time.Now()
	f, err := load.Login(ctx, load.FleetConfig{Addr: srv.C2SAddr, Domain: srv.Domain, Password: password,
		Users: names, Subscribe: subscribeTo, Logins: 64, Timeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Abort)
	if err := f.Available("resync"); err != nil {
		t.Fatal(err)
	}
	waitLong(t, "all tracked", func() bool { return svc.Metric(t, "pubpresence_tracked_connections") == float64(n) })
	logins := time.Since(t0)
	if way := svc.Metric(t, `pubpresence_tracking{way="`+mode+`"}`); way != 1 {
		t.Fatalf("pubpresence_tracking{way=%q} is %v: the service does not track in the mode of this row", mode, way)
	}
	st := dial(t, srv, reader, "status")
	drainedActual(t, srv, f, st)
	evs := events(t, st)
	subscribe(t, st, srv, testNodes.Status)
	timeOnline := func() time.Duration {
		t.Helper()
		begin := time.Now()
		svc.Start()
		next(t, evs, "init", func(e eventItem) bool { return e.Node == testNodes.Status && statusOf(e) == "init" })
		for {
			select {
			case e := <-evs:
				if e.Node == testNodes.Status && statusOf(e) == "online" {
					return time.Since(begin)
				}
			case <-time.After(5 * time.Minute):
				t.Fatal("no online within 5 min")
			}
		}
	}
	// serverCPU is the CPU time the server has used so far (its process
	// group).
	serverCPU := func() time.Duration {
		g := srv.Pid()
		return procCPU(t, func(_, pgrp int) bool { return pgrp == g })
	}
	// quiet waits until the server is idle (under 10 % of a core over a
	// quarter of a second; 20 s at most) and returns the CPU it used and
	// the time it took meanwhile: what a step left the server to do after
	// it ended (the component's presence to each subscriber at online and
	// at a clean stop), kept out of the next step's count.
	quiet := func() (used, took time.Duration) {
		begin, c0 := time.Now(), serverCPU()
		last := c0
		for time.Since(begin) < 20*time.Second {
			time.Sleep(250 * time.Millisecond)
			c := serverCPU()
			if c-last <= 20*time.Millisecond {
				break
			}
			last = c
		}
		return serverCPU() - c0, time.Since(begin)
	}
	way := load.LearnProbe
	switch {
	case mode == "privileged" && srv.Kind == "prosody":
		way = load.LearnPush
	case mode == "privileged":
		way = load.LearnAPI
	}
	bares := make([]string, n)
	for i, u := range names {
		bares[i] = u + "@" + srv.Domain
	}

	// Rounds of warm, learner, raw publisher, cold, one after the other:
	// each raw publisher leaves the stale items the next cold start
	// retracts. The rows give the medians; the machine is shared, and the
	// raw publisher alone moved by ±30 % between runs of one round.
	rounds := perfRounds(n)
	// logStart prints what the service logged from its line lines0 on,
	// during round r's start of kind ("warm", "cold").
	logStart := func(r int, kind string, lines0 int) {
		for _, l := range svc.LogLines()[lines0:] {
			if os.Getenv("PUBPRESENCE_PERF_LOG") != "" {
				t.Logf("service log: %v %v %v", l["time"], l["level"], l["message"])
			}
			if l["message"] == "resync" || l["message"] == "online" {
				t.Logf("round %d: %s start: %v publish=%v retract=%v purged=%v live_unchanged=%v listed_ms=%v settled_ms=%v took_ms=%v", r+1, kind, l["message"], l["publish"], l["retract"],
					l["purged"], l["live_unchanged"], l["listed_ms"], l["settled_ms"], l["took_ms"])
			}
		}
	}
	var warm, learnt, fetch, raw, cold, warmSrv, learnSrv, rawSrv, coldSrv, coldSvc []time.Duration
	atOnline, coldAtOnline := n, n
	for r := range rounds {
		// Warm: a quick restart, nothing changed.
		svc.Stop()
		stopUsed, stopTook := quiet()
		c0 := serverCPU()
		lines0 := len(svc.LogLines())
		w := timeOnline()
		warmSrv = append(warmSrv, serverCPU()-c0)
		warmSvc := svc.cpu(t) // a new process: all of its CPU so far
		tailUsed, tailTook := quiet()
		t.Logf("round %d: the server's CPU after the clean stop until quiet: %v in %v; after the warm start's online: %v in %v (not in the warm start's count)",
			r+1, stopUsed, stopTook.Round(time.Millisecond), tailUsed, tailTook.Round(time.Millisecond))
		warm = append(warm, w)
		logStart(r, "warm", lines0)
		// A user whose probe answer came after the grace is published just
		// after online (seen once in 10 000 on Prosody): count, then wait.
		atOnline = min(atOnline, len(actualItems(t, st, srv)))
		drainedActual(t, srv, f, st)

		// The raw learner has the server do what a warm start must: tell
		// the presence of every session, the way of this mode (lists and
		// probes; Prosody's push after the handshake; ejabberd's API).
		svc.Stop()
		quiet()
		c0 = serverCPU()
		var learn load.LearnReport
		var err error
		for try := 1; ; try++ {
			learn, err = load.Learn(ctx, load.LearnConfig{Addr: srv.ComponentAddr, Name: srv.Component, Secret: srv.Secret,
				Domain: srv.Domain, Way: way, API: apiSessions(srv.APIURL), Want: n, Users: bares, Grace: perfGrace,
				Service: srv.Pubsub, Node: testNodes.Actual})
			if !nameHeld(err) || try == 30 {
				break
			}
			// A busy Prosody has not yet read the stopped service's close
			// (seen with 10 000 users): it still holds the name.
			t.Logf("round %d: raw learner: %v; again in 1 s", r+1, err)
			c0 = serverCPU()
			time.Sleep(time.Second)
		}
		if err != nil {
			t.Fatalf("raw learner (%v): %v", way, err)
		}
		learnSrv = append(learnSrv, serverCPU()-c0)
		t.Logf("round %d: raw learner, %v: listed %d sessions in %v, probed %d users, learned %d in %v, settled (grace %v) in %v; then fetched the %d items of the actual node in %v",
			r+1, way, learn.Listed, learn.Listing.Round(time.Millisecond), learn.Probed, learn.Learned, learn.Took.Round(time.Millisecond),
			perfGrace, learn.Settled.Round(time.Millisecond), learn.Items, learn.Fetch.Round(time.Millisecond))
		// The comparison: when the raw learner is done by the service's own
		// rule (all answered, or a grace of quiet), else when all is learned.
		l := learn.Took
		if learn.Settled > 0 {
			l = learn.Settled
		}
		learnt, fetch = append(learnt, l), append(fetch, learn.Fetch)

		// The raw publisher does what a cold start must: retract every item
		// and publish one per connection (retracts first, as the service).
		c0 = serverCPU()
		rp, err := load.Raw(ctx, rawConfig(srv), coldOps(names, srv.Domain))
		if err != nil || rp.Errors > 0 {
			t.Fatalf("raw publisher: %v; %d of %d failed, first %v", err, rp.Errors, rp.Requests, rp.FirstErr)
		}
		rawSrv = append(rawSrv, serverCPU()-c0)
		raw = append(raw, rp.Took)

		// Cold: every item on actual is stale (the raw publisher's), every
		// connection is missing: the same retracts and publishes.
		c0 = serverCPU()
		lines0 = len(svc.LogLines())
		c := timeOnline()
		coldSrv = append(coldSrv, serverCPU()-c0)
		coldSvc = append(coldSvc, svc.cpu(t)) // a new process: all of its CPU so far
		cold = append(cold, c)
		coldAtOnline = min(coldAtOnline, len(actualItems(t, st, srv)))
		drainedActual(t, srv, f, st)
		logStart(r, "cold", lines0)
		t.Logf("round %d: warm %v (server CPU %v, pubpresence CPU %v), learner %v + fetch %v (server CPU %v), raw %v (server CPU %v), cold %v (server CPU %v, pubpresence CPU %v)",
			r+1, w.Round(time.Millisecond), warmSrv[r], warmSvc, l.Round(time.Millisecond), learn.Fetch.Round(time.Millisecond), learnSrv[r],
			rp.Took.Round(time.Millisecond), rawSrv[r], c.Round(time.Millisecond), coldSrv[r], coldSvc[r])
	}
	ratios := func(a, b []time.Duration) string {
		var rs []string
		for i := range a {
			rs = append(rs, fmt.Sprintf("%.2f", a[i].Seconds()/b[i].Seconds()))
		}
		return strings.Join(rs, ", ")
	}
	plus := func(a, b []time.Duration) []time.Duration {
		s := make([]time.Duration, len(a))
		for i := range a {
			s[i] = a[i] + b[i]
		}
		return s
	}
	mw, ml, mf, mr, mc := median(warm), median(learnt), median(fetch), median(raw), median(cold)
	t.Logf("%s, %d users, %s, %d rounds: logged in and tracked in %v; medians: warm %v, learner %v, raw %v, cold %v; server memory: %s", srv.Kind, n, mode, rounds,
		logins.Round(time.Millisecond), mw.Round(time.Millisecond), ml.Round(time.Millisecond), mr.Round(time.Millisecond), mc.Round(time.Millisecond),
		procMemory(srv.Pid()))
	perfRow(t, srv, fmt.Sprintf("resync %d users, %s, logins: first login→all tracked", n, mode), fmt.Sprintf("%.1f s", logins.Seconds()), "", "", "")
	perfRow(t, srv, fmt.Sprintf("resync %d users, %s, warm: start→online (median of %d)", n, mode, rounds), fmt.Sprintf("%.2f s", mw.Seconds()),
		fmt.Sprintf("raw learner (%v) %.2f s, + fetch of actual %.2f s; actual held ≥ %d of %d at online; server CPU %.2f s against the learner's %.2f s",
			way, ml.Seconds(), mf.Seconds(), atOnline, n, median(warmSrv).Seconds(), median(learnSrv).Seconds()),
		fmt.Sprintf("%.2f (rounds %s); with the fetch %.2f (rounds %s)", mw.Seconds()/ml.Seconds(), ratios(warm, learnt),
			mw.Seconds()/median(plus(learnt, fetch)).Seconds(), ratios(warm, plus(learnt, fetch))), "≤ 1.2, ≤ 3 s")
	perfRow(t, srv, fmt.Sprintf("resync %d users, %s, cold: start→online (median of %d)", n, mode, rounds), fmt.Sprintf("%.2f s", mc.Seconds()),
		fmt.Sprintf("raw %.2f s; actual held ≥ %d of %d at online; server CPU %.2f s against the raw publisher's %.2f s; pubpresence CPU %.2f s",
			mr.Seconds(), coldAtOnline, n, median(coldSrv).Seconds(), median(rawSrv).Seconds(), median(coldSvc).Seconds()),
		fmt.Sprintf("%.2f (rounds %s); server CPU %.2f", mc.Seconds()/mr.Seconds(), ratios(cold, raw), median(coldSrv).Seconds()/median(rawSrv).Seconds()), "≤ 1.2")
}

// nameHeld reports whether err is the server's refusal of a component
// stream because its name is still connected (a stream conflict): the
// server has not yet read the close of the last stream of that name.
func nameHeld(err error) bool {
	var se *xmpp.StreamError
	return errors.As(err, &se) && se.Condition == xmpp.ErrStreamConflict
}

// perfServerOptions returns the server options of the resync and
// throughput rows that the environment sets: PUBPRESENCE_PERF_PROSODY_GC,
// PUBPRESENCE_PERF_ERL_FLAGS.
func perfServerOptions(t *testing.T) []testserver.Option {
	var opts []testserver.Option
	switch gc := os.Getenv("PUBPRESENCE_PERF_PROSODY_GC"); gc {
	case "":
	case "generational":
		opts = append(opts, testserver.WithGenerationalGC())
	default:
		t.Fatalf("PUBPRESENCE_PERF_PROSODY_GC=%q: want generational or nothing", gc)
	}
	if f := strings.Fields(os.Getenv("PUBPRESENCE_PERF_ERL_FLAGS")); len(f) > 0 {
		opts = append(opts, testserver.WithErlangFlags(f...))
	}
	return opts
}

// procMemory returns the resident set of process pid now and at its peak
// (VmRSS, VmHWM of /proc/pid/status), or why it cannot.
func procMemory(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return err.Error()
	}
	var rss, hwm string
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			rss = strings.TrimSpace(v)
		} else if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			hwm = strings.TrimSpace(v)
		}
	}
	return fmt.Sprintf("RSS %s, peak %s (pid %d)", rss, hwm, pid)
}

// perfRounds is how many rounds of warm and cold starts perfResync runs
// with n users: PUBPRESENCE_PERF_ROUNDS, else 3 up to 1000 users and 1
// above (a cold start of 10 000 on ejabberd takes minutes).
func perfRounds(n int) int {
	if s := os.Getenv("PUBPRESENCE_PERF_ROUNDS"); s != "" {
		r, err := strconv.Atoi(s)
		if err == nil && r > 0 {
			return r
		}
	}
	if n <= 1000 {
		return 3
	}
	return 1
}

// apiSessions is load.LearnConfig.API for ejabberd's HTTP API at url.
func apiSessions(url string) func(context.Context) ([]string, int, error) {
	return func(ctx context.Context) ([]string, int, error) {
		sessions, err := (&ejabberdapi.Client{URL: url}).ConnectedUsersInfo(ctx)
		var present []string
		for _, s := range sessions {
			if s.Show != "" {
				present = append(present, xmpp.BareOf(s.JID))
			}
		}
		return present, len(sessions), err
	}
}

// waitLong is waitUntil with a bound for thousands of logins.
func waitLong(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func rd(d time.Duration) string {
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.0f ms", float64(d)/1e6)
}

func ratio(a, b time.Duration) string {
	if b <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", float64(a)/float64(b))
}

// perfOnly skips t unless PUBPRESENCE_PERF is set (scripts/perf.sh) and
// the race detector is off.
func perfOnly(t *testing.T) {
	t.Helper()
	if os.Getenv("PUBPRESENCE_PERF") == "" {
		t.Skip("set PUBPRESENCE_PERF=1 (scripts/perf.sh) to measure")
	}
	if raceEnabled {
		t.Skip("measured without -race")
	}
}

// changeOps returns what a publisher that keeps presence/actual sends for
// changes changes of the users names in turn: a live event and the actual
// item each.
func changeOps(names []string, domain string, changes int) []load.RawOp {
	ops := make([]load.RawOp, 0, 2*changes)
	for i := range changes {
		c := presence.Conn{JID: fmt.Sprintf("%s@%s/load", names[i%len(names)], domain), Show: presence.Away,
			Text: fmt.Sprintf("ldraw#%d", i), IP: "127.0.0.1", Since: time.Now().UTC()}
		ops = append(ops, load.RawOp{Node: testNodes.Live, Conn: c}, load.RawOp{Node: testNodes.Actual, Conn: c})
	}
	return ops
}

// coldOps returns what a cold start of the users names must send: every
// item retracted, and one stale item per user published (retracts first,
// as the service does).
func coldOps(names []string, domain string) []load.RawOp {
	ops := make([]load.RawOp, 0, 2*len(names))
	for _, n := range names {
		ops = append(ops, load.RawOp{Node: testNodes.Actual, Retract: true, ID: fmt.Sprintf("%s@%s/load", n, domain)})
	}
	for _, n := range names {
		ops = append(ops, load.RawOp{Node: testNodes.Actual, Conn: presence.Conn{JID: fmt.Sprintf("%s@%s/stale", n, domain),
			Text: "resync", IP: "127.0.0.1", Since: time.Now().UTC()}})
	}
	return ops
}

// warmUp sends one change of each of n users (200 a second, or n/10 when
// more: 10 s), again, until every one
// reaches both observers of run: the contact's subscriptions settle a
// while after the logins (ejabberd delivered a quarter of the first
// changes late or not at all).
func warmUp(t *testing.T, run func(load.RunConfig) load.Report, n int) {
	t.Helper()
	for try := 1; ; try++ {
		rep := run(load.RunConfig{Rate: max(200, float64(n)/10), Changes: n, Drain: 10 * time.Second})
		lv, _ := rep.Stream("live")
		ct, _ := rep.Stream("contact")
		if lv.Lost == 0 && ct.Lost == 0 {
			return
		}
		if try == 10 {
			t.Fatalf("warm-up: after %d tries, still lost %d live and %d contact changes", try, lv.Lost, ct.Lost)
		}
	}
}

// observedRun returns a function that drives f with a run of cfg's
// changes, timed by the observers, and returns its report.
func observedRun(t *testing.T, ctx context.Context, f *load.Fleet, observers ...*load.Observer) func(load.RunConfig) load.Report {
	return func(cfg load.RunConfig) load.Report {
		t.Helper()
		r, err := load.NewRun(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range observers {
			r.Observe(o)
		}
		rep, err := r.Drive(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
}

// median returns the median of ds (the mean of the middle two when even).
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
