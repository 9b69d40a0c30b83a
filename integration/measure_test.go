//go:build integration

package integration

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/c2s"
	"github.com/pubpresence/pubpresence/integration/internal/server"
)

// TestIntegrationMeasureStartup measures, without asserting speed, the time
// from starting pubpresence to `online` on presence/status with N users
// connected: warm (presence/actual already true) and cold (every item
// stale, every connection new). It runs only when PUBPRESENCE_MEASURE lists
// the sizes, e.g. PUBPRESENCE_MEASURE=100,1000.
func TestIntegrationMeasureStartup(t *testing.T) {
	sizes := os.Getenv("PUBPRESENCE_MEASURE")
	if sizes == "" {
		t.Skip("set PUBPRESENCE_MEASURE=100,1000 to measure")
	}
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			t.Fatalf("PUBPRESENCE_MEASURE: bad size %q", s)
		}
		eachServer(t, func(t *testing.T, start startFunc) {
			t.Run(fmt.Sprint(n), func(t *testing.T) { measureStartup(t, start, n) })
		})
	}
}

// loginAll logs every user in with resource res, subscribed to the
// component, 32 at a time.
func loginAll(t *testing.T, srv *server.Server, names []string, res string) []*c2s.Client {
	clients := make([]*c2s.Client, len(names))
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			clients[i] = online(t, srv, n, res)
		}()
	}
	wg.Wait()
	return clients
}

func measureStartup(t *testing.T, start startFunc, n int) {
	srv := start(t)
	names := users("m", n)
	createUsers(t, srv, names...)
	// A 2 s keepalive would call the server dead while it hashes a thousand
	// logins on these two cores (seen on ejabberd), and a subscribe sent to
	// ejabberd while the component is away is lost.
	svc := startService(t, srv, func(o *svcOptions) { o.initLimit = "120s"; o.keepalive = "20s" })
	waitUntil(t, "readyz", func() bool { return svc.Ready() == http.StatusOK })
	t0 := time.Now()
	clients := loginAll(t, srv, names, "a")
	waitUntil(t, "all tracked", func() bool { return svc.Metric(t, "pubpresence_tracked_connections") == float64(n) })
	t.Logf("%s, %d users: logged in and tracked in %v", srv.Kind, n, time.Since(t0).Round(time.Millisecond))

	st := dial(t, srv, reader, "status")
	evs := events(t, st)
	subscribe(t, st, srv, nodes.Status)
	timeOnline := func(what string) {
		t.Helper()
		begin := time.Now()
		svc.Start()
		next(t, evs, "init", func(e eventItem) bool { return e.Node == nodes.Status && statusOf(e) == "init" })
		next(t, evs, "online", func(e eventItem) bool { return e.Node == nodes.Status && statusOf(e) == "online" })
		took := time.Since(begin)
		items := actualItems(t, st, srv)
		t.Logf("MEASURE %s users=%d %s: start→online %v (actual holds %d items)", srv.Kind, n, what, took.Round(time.Millisecond), len(items))
		if len(items) != n {
			t.Errorf("actual holds %d items, want %d", len(items), n)
		}
	}

	// Warm: a quick restart, nothing changed.
	svc.Stop()
	timeOnline("warm")

	// Cold: every connection replaced while the service was down.
	svc.Kill()
	for _, c := range clients {
		_ = c.Abort()
	}
	loginAll(t, srv, names, "b")
	timeOnline("cold")
}
