//go:build integration

package integration

import (
	"net/http"
	"testing"

	"github.com/pubpresence/pubpresence/internal/c2s"
	"github.com/pubpresence/pubpresence/presence"
)

// TestIntegrationPurgeStale: with sync.purge_stale, a start that finds
// presence/actual stale (every user came back with a new resource while
// the service was down, as after a server restart) purges the node in one
// request: a subscriber of the node gets one purge and no retraction, and
// when online is published the node holds exactly the new connections.
func TestIntegrationPurgeStale(t *testing.T) {
	const n = 70 // above the 64 stale items a purge needs
	eachWay(t, func(t *testing.T, start startFunc) {
		srv := start(t)
		names := users("p", n)
		createUsers(t, srv, names...)
		svc := startService(t, srv, func(o *svcOptions) { o.purge = true })
		waitUntil(t, "readyz", func() bool { return svc.Ready() == http.StatusOK })
		old := map[string]*c2s.Client{}
		want := map[string]conn{}
		for _, u := range names {
			old[u] = online(t, srv, u, "r1")
			want[u+"@localhost/r1"] = conn{show: presence.Online, ip: "127.0.0.1"}
		}
		w := watcher(t, srv)
		waitView(t, w, want)

		// Everyone leaves while the service is down, and comes back on
		// another resource: every item of the node is stale.
		svc.Kill()
		want = map[string]conn{}
		for _, u := range names {
			_ = old[u].Close()
		}
		for _, u := range names {
			online(t, srv, u, "r2")
			want[u+"@localhost/r2"] = conn{show: presence.Online, ip: "127.0.0.1"}
		}

		st := dial(t, srv, reader, "status")
		evs := events(t, st)
		subscribe(t, st, srv, testNodes.Status)
		subscribe(t, st, srv, testNodes.Actual)
		lines0 := len(svc.LogLines())
		svc.Start()
		next(t, evs, "init", func(e eventItem) bool { return e.Node == testNodes.Status && statusOf(e) == "init" })
		purges, retracts := 0, 0
		next(t, evs, "online", func(e eventItem) bool {
			switch {
			case e.Node == testNodes.Actual && e.Purge:
				purges++
			case e.Node == testNodes.Actual && e.Retract:
				retracts++
			}
			return e.Node == testNodes.Status && statusOf(e) == "online"
		})
		if purges != 1 || retracts != 0 {
			t.Errorf("before online the actual node's subscriber got %d purges and %d retractions, want 1 and 0", purges, retracts)
		}
		if got := actualItems(t, st, srv); !matches(got, want) {
			t.Fatalf("actual when online was published:\n%swant %v", describe(got), want)
		}
		purged := false
		for _, l := range svc.LogLines()[lines0:] {
			if l["message"] == "resync" && l["purged"] == true {
				purged = true
			}
		}
		if !purged {
			t.Errorf("no resync log line with purged=true")
		}
		waitView(t, w, want)
	})
}
