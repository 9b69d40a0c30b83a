//go:build integration

package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/internal/c2s"
	"github.com/pubpresence/pubpresence/presence"
)

// get returns the status code and body of an HTTP GET on the service's
// listener; code 0 when it cannot connect.
func (s *service) get(path string) (int, string) {
	resp, err := http.Get("http://" + s.http + path)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// logged returns the log lines whose message is msg.
func logged(lines []map[string]any, msg string) []map[string]any {
	var out []map[string]any
	for _, l := range lines {
		if l["message"] == msg {
			out = append(out, l)
		}
	}
	return out
}

// countLevels counts log lines by level.
func countLevels(lines []map[string]any) map[string]int {
	n := make(map[string]int)
	for _, l := range lines {
		n[fmt.Sprint(l["level"])]++
	}
	return n
}

// TestIntegrationOperating: what an operator sees of a running service —
// /healthz, /readyz, /metrics with true values, JSON logs with one line per
// connect and resync and none per stanza above debug, no secret — and a
// clean stop on SIGTERM.
func TestIntegrationOperating(t *testing.T) {
	eachServer(t, func(t *testing.T, start startFunc) {
		srv := start(t)
		createUsers(t, srv, "olga", "oscar")
		svc := startService(t, srv)
		waitUntil(t, "healthz", func() bool { code, body := svc.get("/healthz"); return code == http.StatusOK && body == "ok\n" })
		waitUntil(t, "readyz", func() bool { return svc.Ready() == http.StatusOK })

		olga := online(t, srv, "olga", "a")
		online(t, srv, "oscar", "b")
		w := watcher(t, srv)
		want := map[string]conn{
			"olga@localhost/a":  {show: presence.Online, ip: "127.0.0.1"},
			"oscar@localhost/b": {show: presence.Online, ip: "127.0.0.1"},
		}
		waitView(t, w, want)
		// actual follows live by one pipelined request: wait for it.
		waitUntil(t, "actual published", func() bool {
			return svc.Metric(t, `pubpresence_pubsub_requests_total{node="presence/actual",op="publish",result="ok"}`) >= 2
		})

		exact := map[string]float64{
			`pubpresence_state{state="online"}`:                       1,
			`pubpresence_state{state="init"}`:                         0,
			`pubpresence_connected`:                                   1,
			`pubpresence_tracked_connections`:                         2,
			`pubpresence_tracked_users`:                               2,
			`pubpresence_syncs_total{kind="initial",result="ok"}`:     1,
			`pubpresence_sync_duration_seconds_count{kind="initial"}`: 1,
			`pubpresence_reconnects_total`:                            0,
		}
		for sample, v := range exact {
			if got := svc.Metric(t, sample); got != v {
				t.Errorf("%s = %v, want %v", sample, got, v)
			}
		}
		atLeast := map[string]float64{
			`pubpresence_presence_events_total{type="available"}`:                                    2,
			`pubpresence_pubsub_requests_total{node="presence/live",op="publish",result="ok"}`:       2,
			`pubpresence_pubsub_request_duration_seconds_count{node="presence/live",op="publish"}`:   2,
			`pubpresence_pubsub_request_duration_seconds_count{node="presence/actual",op="publish"}`: 2,
			`go_goroutines`:                 1,
			`process_resident_memory_bytes`: 1,
		}
		for sample, v := range atLeast {
			if got := svc.Metric(t, sample); got < v {
				t.Errorf("%s = %v, want ≥ %v", sample, got, v)
			}
		}
		if _, body := svc.get("/metrics"); !strings.Contains(body, `pubpresence_build_info{goversion="go`) {
			t.Errorf("no pubpresence_build_info in /metrics")
		}

		// Logs: JSON, one line per connect and resync, nothing per stanza
		// above debug, and never the secret.
		before := countLevels(svc.LogLines())
		for i := range 20 {
			if err := olga.Presence([]string{"away", "dnd"}[i%2], fmt.Sprint("change ", i), 0); err != nil {
				t.Fatal(err)
			}
		}
		want["olga@localhost/a"] = conn{show: presence.DND, text: "change 19", ip: "127.0.0.1"}
		waitView(t, w, want)
		lines := svc.LogLines()
		after := countLevels(lines)
		for _, level := range []string{"info", "warn", "error"} {
			if after[level] != before[level] {
				t.Errorf("20 presence changes wrote %d %s lines, want 0", after[level]-before[level], level)
			}
		}
		if after["debug"] < before["debug"]+20 {
			t.Errorf("20 presence changes wrote %d debug lines, want ≥ 20 (one per stanza at debug)", after["debug"]-before["debug"])
		}
		for _, msg := range []string{"starting", "connected", "online"} {
			if n := len(logged(lines, msg)); n != 1 {
				t.Errorf("%d %q lines, want 1", n, msg)
			}
		}
		for _, l := range logged(lines, "resync") {
			for _, field := range []string{"kind", "connections", "users", "publish", "retract", "ghosts", "took_ms"} {
				if _, ok := l[field]; !ok {
					t.Errorf("resync line without %s: %v", field, l)
				}
			}
		}
		if on := logged(lines, "online"); len(on) == 1 && on[0]["connections"] == nil {
			t.Errorf("online line without connections: %v", on[0])
		}

		svc.Stop()
		if code, sig := svc.Exited(); code != 0 {
			t.Errorf("SIGTERM: exit code %d (signal %v), want 0", code, sig)
		}
		lines = svc.LogLines()
		for _, msg := range []string{"stopping: publish queue drained", "leaving: init published", "stopped"} {
			if len(logged(lines, msg)) != 1 {
				t.Errorf("no %q line after SIGTERM; log:\n%s", msg, svc.LogTail(10))
			}
		}
		if svc.Logged(srv.Secret) {
			t.Errorf("the component secret is in the log")
		}
		if code, _ := svc.get("/healthz"); code != 0 {
			t.Errorf("/healthz answers %d after the stop", code)
		}
	})
}

// TestIntegrationShutdownUnderLoad: SIGTERM while users change presence as
// fast as they can: the process ends by itself, with code 0, after saying
// how many requests it abandoned; the status node says init; and a new
// start publishes the truth.
func TestIntegrationShutdownUnderLoad(t *testing.T) {
	eachServer(t, func(t *testing.T, start startFunc) {
		srv := start(t)
		locals := users("flood", 10)
		createUsers(t, srv, locals...)
		svc := startService(t, srv)
		waitUntil(t, "readyz", func() bool { return svc.Ready() == http.StatusOK })
		// Each user sends a burst of changes as fast as the stream takes
		// them (an unbounded flood would leave the server with minutes of
		// buffered stanzas; floods are issue 5's), then a last one.
		const burst = 200
		want := make(map[string]conn)
		var clients []*c2s.Client
		for _, u := range locals {
			clients = append(clients, online(t, srv, u, "r"))
			want[u+"@localhost/r"] = conn{show: presence.XA, text: "last", ip: "127.0.0.1"}
		}
		// Every subscription is complete before the stop: a subscribe
		// that reaches ejabberd while the component is away is lost, and
		// that is not what this test is about.
		waitUntil(t, "all tracked", func() bool { return svc.Metric(t, "pubpresence_tracked_connections") == float64(len(locals)) })
		var wg sync.WaitGroup
		for _, cl := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range burst {
					if cl.Presence([]string{"away", "dnd", "chat"}[i%3], fmt.Sprint(i), 0) != nil {
						return
					}
				}
				_ = cl.Presence("xa", "last", 0)
			}()
		}
		time.Sleep(100 * time.Millisecond) // let the bursts build a queue
		began := time.Now()
		svc.Stop()
		took := time.Since(began)
		wg.Wait()
		if code, sig := svc.Exited(); code != 0 {
			t.Fatalf("SIGTERM under load: exit code %d (signal %v), want 0; log:\n%s", code, sig, svc.LogTail(20))
		}
		t.Logf("stopped in %v", took)
		drained := logged(svc.LogLines(), "stopping: publish queue drained")
		if len(drained) != 1 || drained[0]["abandoned"] == nil {
			t.Fatalf("no drain line with an abandoned count: %v", drained)
		}
		t.Logf("abandoned: %v", drained[0]["abandoned"])

		rd := dial(t, srv, reader, "check")
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		items, err := rd.Items(ctx, srv.Pubsub, testNodes.Status)
		if err != nil || len(items) != 1 || !strings.Contains(string(items[0].Payload), "init") {
			t.Errorf("status after the stop: %v %v, want init", items, err)
		}

		svc.Start()
		waitUntil(t, "readyz after restart", func() bool { return svc.Ready() == http.StatusOK })
		waitView(t, watcher(t, srv), want)
	})
}

// TestIntegrationReload: SIGHUP applies readers and the log level without
// reconnecting, names the changed keys that need a restart, and refuses an
// invalid file without changing anything.
func TestIntegrationReload(t *testing.T) {
	eachServer(t, func(t *testing.T, start startFunc) {
		srv := start(t)
		createUsers(t, srv, "eve")
		svc := startService(t, srv)
		waitUntil(t, "readyz", func() bool { return svc.Ready() == http.StatusOK })
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		eve := dial(t, srv, "eve", "r")
		mon := dial(t, srv, reader, "r")
		if _, err := eve.Items(ctx, srv.Pubsub, testNodes.Actual); err == nil {
			t.Fatal("eve reads the actual node before she is a reader")
		}

		monitor, eveJID := reader+"@"+srv.Domain, "eve@"+srv.Domain
		svc.Rewrite(fmt.Sprintf("readers = [%q]", monitor), fmt.Sprintf("readers = [%q, %q]", monitor, eveJID))
		svc.Rewrite(`level = "debug"`, `level = "info"`)
		svc.Rewrite(`keepalive_interval = "2s"`, `keepalive_interval = "3s"`)
		svc.Hup()
		waitUntil(t, "reload logged", func() bool { return len(logged(svc.LogLines(), "configuration reloaded")) == 1 })
		waitUntil(t, "eve can read", func() bool { _, err := eve.Items(ctx, srv.Pubsub, testNodes.Actual); return err == nil })
		lines := svc.LogLines()
		l := logged(lines, "configuration reloaded")[0]
		if got := fmt.Sprint(l["applied"]); got != "[nodes.readers log.level]" {
			t.Errorf("applied %s, want [nodes.readers log.level]", got)
		}
		if got := fmt.Sprint(l["needs_restart"]); got != "[xmpp.keepalive_interval]" {
			t.Errorf("needs_restart %s, want [xmpp.keepalive_interval]", got)
		}
		// From the reload on, info: presence is no longer logged.
		online(t, srv, "eve", "r2")
		waitUntil(t, "eve tracked", func() bool { return svc.Metric(t, "pubpresence_tracked_connections") == 1 })
		lines = svc.LogLines()
		at := slices.IndexFunc(lines, func(l map[string]any) bool { return l["message"] == "configuration reloaded" })
		if n := countLevels(lines[at:])["debug"]; n > 0 {
			t.Errorf("%d debug lines after the level became info", n)
		}

		// A reader taken off the list loses access.
		svc.Rewrite(fmt.Sprintf("readers = [%q, %q]", monitor, eveJID), fmt.Sprintf("readers = [%q]", eveJID))
		svc.Hup()
		waitUntil(t, "monitor loses access", func() bool { _, err := mon.Items(ctx, srv.Pubsub, testNodes.Actual); return err != nil })

		// An invalid file changes nothing and says why.
		svc.Rewrite("[sync]", "[sync]\nbogus = 1")
		svc.Hup()
		waitUntil(t, "reload refused", func() bool { return svc.Metric(t, `pubpresence_config_reloads_total{result="error"}`) == 1 })
		refused := logged(svc.LogLines(), "reload refused: invalid configuration; nothing changed")
		if len(refused) != 1 || !strings.Contains(fmt.Sprint(refused[0]["problems"]), "sync.bogus") {
			t.Errorf("refusal does not name the key: %v", refused)
		}
		if _, err := eve.Items(ctx, srv.Pubsub, testNodes.Actual); err != nil {
			t.Errorf("eve lost access after a refused reload: %v", err)
		}
		if svc.Ready() != http.StatusOK || svc.Metric(t, "pubpresence_reconnects_total") != 0 {
			t.Errorf("reloads disturbed the stream: readyz %d, reconnects %v", svc.Ready(), svc.Metric(t, "pubpresence_reconnects_total"))
		}
		if !svc.Running() {
			t.Fatal("the service exited")
		}
		svc.Stop()
		if code, sig := svc.Exited(); code != 0 || sig == syscall.SIGKILL {
			t.Errorf("exit %d %v", code, sig)
		}
	})
}
