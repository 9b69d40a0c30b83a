//go:build integration

package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/internal/load"
	"github.com/pubpresence/pubpresence/internal/testserver"
	"github.com/pubpresence/pubpresence/presence"
	"github.com/pubpresence/pubpresence/pubsub"
)

// TestIntegrationFetchCost measures what the server spends to read a node
// of N items, the read every warm start makes of presence/actual
// (docs/prosody.md, "Garbage collection"): the whole node in one request,
// its ids alone (disco#items on the node), and the items asked for by id
// in batches. No user is online: it is the server's own cost of the read.
// It runs with the performance test (PUBPRESENCE_PERF=1), on both servers,
// and, on Prosody, once with Prosody's default garbage collector and once
// with Lua's generational one (testserver.WithGenerationalGC).
//
//	PUBPRESENCE_REQUIRE_SERVERS=1 PUBPRESENCE_PERF=1 go test -tags integration \
//	    -run TestIntegrationFetchCost -v ./integration
func TestIntegrationFetchCost(t *testing.T) {
	perfOnly(t)
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			t.Run("default", func(t *testing.T) { fetchCost(t, s.start, "default collector") })
			if s.name == string(testserver.Prosody) {
				t.Run("generational", func(t *testing.T) {
					fetchCost(t, s.start, "generational collector", testserver.WithGenerationalGC())
				})
			}
		})
	}
}

// fetchCost fills a node of each size and measures its reads, on a
// server from start with opts; gc names the server's collector in the rows.
func fetchCost(t *testing.T, start startFunc, gc string, opts ...testserver.Option) {
	sizes := []int{1000, 10000}
	srv := start(t, append(opts, testserver.WithMaxItems(2*sizes[len(sizes)-1]))...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// Every stream is under the component's own name (the nodes' owner),
	// one at a time: the raw publisher's, or this test's. A stream refused
	// because the server has not yet read the last one's close is tried
	// again.
	retry := func(what string, do func() error) {
		for try := 1; ; try++ {
			err := do()
			if err == nil {
				return
			}
			if !nameHeld(err) || try == 50 {
				t.Fatalf("%s: %v", what, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	dial := func() (conn *component.Conn) {
		retry("dial", func() (err error) {
			conn, err = component.Dial(ctx, component.Config{Address: srv.ComponentAddr, Name: srv.Component, Secret: srv.Secret})
			return err
		})
		return conn
	}
	serverCPU := func() time.Duration {
		g := srv.Pid()
		return procCPU(t, func(_, pgrp int) bool { return pgrp == g })
	}
	// measure runs read 3 times, logs each (wall time and server CPU) and
	// prints a row of the medians.
	measure := func(what string, n int, read func() (int, error)) {
		var walls, cpus []time.Duration
		for range 3 {
			c0, t0 := serverCPU(), time.Now()
			got, err := read()
			took, cpu := time.Since(t0), serverCPU()-c0
			if err != nil {
				t.Fatalf("%s of %d: %v", what, n, err)
			}
			if got != n {
				t.Fatalf("%s: got %d of %d items", what, got, n)
			}
			t.Logf("%s, %d items: %v (server CPU %v, %.0f µs an item); server memory: %s",
				what, n, took.Round(time.Millisecond), cpu, float64(cpu.Microseconds())/float64(n), procMemory(srv.Pid()))
			walls, cpus = append(walls, took), append(cpus, cpu)
		}
		perfRow(t, srv, fmt.Sprintf("read %s of %d items, %s (median of 3)", what, n, gc), fmt.Sprintf("%.2f s", median(walls).Seconds()),
			fmt.Sprintf("server CPU %.2f s", median(cpus).Seconds()), fmt.Sprintf("%.0f µs an item", float64(median(cpus).Microseconds())/float64(n)), "")
	}
	for _, n := range sizes {
		node := fmt.Sprintf("cost/%d", n)
		conn := dial()
		if _, err := pubsub.Ensure(ctx, conn, srv.Pubsub, pubsub.NodeConfig{Node: node, Persist: true, MaxItems: "max",
			SendLast: "never", AccessModel: "whitelist"}); err != nil {
			t.Fatal(err)
		}
		conn.Close()
		ids := make([]string, n)
		ops := make([]load.RawOp, n)
		for i := range ops {
			ids[i] = fmt.Sprintf("u%06d@%s/load", i, srv.Domain)
			ops[i] = load.RawOp{Node: node, Conn: presence.Conn{JID: ids[i], Show: presence.Away,
				Text: fmt.Sprintf("ldraw#%d", i), IP: "127.0.0.1", Since: time.Now().UTC()}}
		}
		var rep load.RawReport
		retry("publish", func() (err error) {
			rep, err = load.Raw(ctx, rawConfig(srv), ops)
			return err
		})
		if rep.Errors > 0 {
			t.Fatalf("publish %d items: %d failed, first %v", n, rep.Errors, rep.FirstErr)
		}
		t.Logf("%s: %d items published in %v", node, n, rep.Took.Round(time.Millisecond))
		conn = dial()
		measure("the whole node", n, func() (int, error) {
			items, err := pubsub.Items(ctx, conn, srv.Pubsub, node)
			return len(items), err
		})
		measure("its ids (disco#items)", n, func() (int, error) {
			inner, err := conn.IQ(ctx, "get", srv.Pubsub,
				[]byte("<query xmlns='http://jabber.org/protocol/disco#items' node='"+node+"'/>"))
			return strings.Count(string(inner), "<item "), err
		})
		measure("by id, 1000 a request", n, func() (int, error) {
			got := 0
			for i := 0; i < n; i += 1000 {
				var b strings.Builder
				b.WriteString("<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='" + node + "'>")
				for _, id := range ids[i:min(i+1000, n)] {
					b.WriteString("<item id='" + id + "'/>")
				}
				b.WriteString("</items></pubsub>")
				inner, err := conn.IQ(ctx, "get", srv.Pubsub, []byte(b.String()))
				if err != nil {
					return got, err
				}
				items, err := pubsub.ParseItems(inner)
				if err != nil {
					return got, err
				}
				got += len(items)
			}
			return got, nil
		})
		conn.Close()
	}
}
