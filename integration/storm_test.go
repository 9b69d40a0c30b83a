//go:build integration

package integration

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/internal/load"
	"github.com/pubpresence/pubpresence/internal/testserver"
)

// TestIntegrationLoginStorm logs thousands of users in at once while
// pubpresence runs (issue 17: "no request should time out when the server
// is merely busy"), and shows, every 5 s, what the server did and how long
// pubpresence's requests waited: the server's CPU, the answers pubpresence
// got, their mean wait, and the timeouts. It checks that no request timed
// out (user-stats lookups included) and that presence/actual holds every
// connection, each with its address. Only with PUBPRESENCE_PERF
// (scripts/perf.sh); nothing is asserted as a time.
//
//	PUBPRESENCE_STORM_USERS=10000   users (default 10000)
//	PUBPRESENCE_STORM_LOGINS=128    logins at once (default 128)
func TestIntegrationLoginStorm(t *testing.T) {
	perfOnly(t)
	n := envInt(t, "PUBPRESENCE_STORM_USERS", 10000)
	logins := envInt(t, "PUBPRESENCE_STORM_LOGINS", 128)
	eachWay(t, func(t *testing.T, start startFunc) { loginStorm(t, start, n, logins) })
}

func loginStorm(t *testing.T, start startFunc, n, logins int) {
	srv := start(t, testserver.WithMaxItems(max(10000, 2*n)))
	names := users("st", n)
	createUsers(t, srv, names...)
	// The timeouts an operator has: the defaults of config.example.toml.
	svc := startService(t, srv, func(o *svcOptions) {
		o.logLevel, o.initLimit = "info", "300s"
		o.keepaliveEvery, o.keepalive, o.requestTimeout = "30s", "10s", "30s"
	})
	waitUntil(t, "readyz", func() bool { return svc.Ready() == http.StatusOK })
	way := "roster"
	var subscribe []string
	if srv.Privileged() {
		way = "privileged"
	} else {
		subscribe = []string{srv.Component}
	}

	// The timeline, every 5 s, until the logins and the tracking are done.
	type sample struct {
		at              time.Time
		cpu             time.Duration // the server's
		answers, waited float64       // pubsub answers, and their summed wait
		timeouts        float64
		tracked         float64
	}
	take := func() sample {
		g := srv.Pid()
		return sample{at: time.Now(), cpu: procCPU(t, func(_, pgrp int) bool { return pgrp == g }),
			answers:  scrapeSum(t, svc, "pubpresence_pubsub_request_duration_seconds_count"),
			waited:   scrapeSum(t, svc, "pubpresence_pubsub_request_duration_seconds_sum"),
			timeouts: scrapeSum(t, svc, `pubpresence_iq_errors_total{condition="timeout"}`),
			tracked:  svc.Metric(t, "pubpresence_tracked_connections")}
	}
	began := take()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		prev := began
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			s := take()
			d := s.at.Sub(prev.at)
			mean := 0.0
			if a := s.answers - prev.answers; a > 0 {
				mean = (s.waited - prev.waited) / a
			}
			t.Logf("STORM | %s %s | %5.0f s | server CPU %3.0f %% | %6.0f answers/s, mean wait %6.3f s | timeouts %4.0f | tracked %6.0f",
				srv.Kind, way, s.at.Sub(began.at).Seconds(), 100*(s.cpu-prev.cpu).Seconds()/d.Seconds(),
				(s.answers-prev.answers)/d.Seconds(), mean, s.timeouts, s.tracked)
			prev = s
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	f, err := load.Login(context.Background(), load.FleetConfig{Addr: srv.C2SAddr, Domain: srv.Domain, Password: password,
		Users: names, Subscribe: subscribe, Logins: logins, Timeout: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Abort)
	loggedIn := time.Since(began.at)
	if err := f.Available("storm"); err != nil {
		t.Fatal(err)
	}
	waitLong(t, "all tracked", func() bool { return svc.Metric(t, "pubpresence_tracked_connections") == float64(n) })
	tracked := time.Since(began.at)
	st := dial(t, srv, reader, "status")
	var noIP int
	waitLong(t, "actual to hold every connection with its address", func() bool {
		items := actualItems(t, st, srv)
		noIP = 0
		for _, c := range items {
			if c.IP == "" {
				noIP++
			}
		}
		return len(items) == n && noIP == 0
	})
	done := take()
	// Every failed request (user-stats lookups included) is counted by
	// its condition.
	failed := scrapeSum(t, svc, "pubpresence_iq_errors_total") - scrapeSum(t, svc, `pubpresence_iq_errors_total{condition="timeout"}`)
	t.Logf("PERF | %s | login storm (%s), %d users, %d at once | logged in %.1f s, tracked %.1f s, actual true %.1f s | %.0f pubsub answers, mean wait %.3f s; server CPU %.0f %%; writes that waited past 10 s %.0f | timeouts %.0f, other failed requests %.0f | |",
		srv.Kind, way, n, logins, loggedIn.Seconds(), tracked.Seconds(), done.at.Sub(began.at).Seconds(),
		done.answers-began.answers, (done.waited-began.waited)/max(done.answers-began.answers, 1),
		100*(done.cpu-began.cpu).Seconds()/done.at.Sub(began.at).Seconds(), svc.Metric(t, "pubpresence_write_waits_total"),
		done.timeouts-began.timeouts, failed)
	if d := done.timeouts - began.timeouts; d > 0 {
		t.Errorf("%.0f requests timed out while the server was busy", d)
	}
	if code := svc.Ready(); code != http.StatusOK {
		t.Errorf("/readyz %d after the storm", code)
	}
	if n := strings.Count(readLog(svc), `"disconnected; reconnecting"`); n > 0 {
		t.Errorf("the stream was lost %d times during the storm", n)
	}
}

// scrapeSum returns the sum of the samples of svc's metrics whose name and
// labels begin with prefix (every label set of a metric, for its name).
func scrapeSum(t *testing.T, svc *service, prefix string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + svc.http + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var sum float64
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		rest := line[len(prefix):]
		if strings.HasSuffix(prefix, "}") && !strings.HasPrefix(rest, " ") ||
			!strings.HasSuffix(prefix, "}") && !strings.HasPrefix(rest, " ") && !strings.HasPrefix(rest, "{") {
			continue // another metric whose name starts the same
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}
