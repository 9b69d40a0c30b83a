//go:build integration

package integration

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// TestIntegrationLoadTool runs cmd/pubpresence-load, as an operator would,
// against pubpresence on each server: a small fleet changes presence at a
// steady rate, and both the live node's watcher and a contact must have
// received every change, in order per user.
func TestIntegrationLoadTool(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "pubpresence-load")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/pubpresence-load").CombinedOutput(); err != nil {
		t.Fatalf("build pubpresence-load: %v\n%s", err, out)
	}
	eachServer(t, func(t *testing.T, start startFunc) {
		srv := start(t)
		const n = 20
		createUsers(t, srv, append(users("lt", n), "ltbuddy")...)
		svc := startService(t, srv)
		waitUntil(t, "readyz", func() bool { return svc.Ready() == 200 })
		cmd := exec.Command(bin, "-addr", srv.C2SAddr, "-domain", srv.Domain, "-password", password,
			"-prefix", "lt", "-n", fmt.Sprint(n), "-component", srv.Component, "-pubsub", srv.Pubsub,
			"-live", testNodes.Live, "-watch", reader, "-contact", "ltbuddy",
			"-rate", "100", "-duration", "2s", "-drain", "20s")
		out, err := cmd.CombinedOutput()
		t.Logf("%s:\n%s", srv.Kind, out)
		if err != nil {
			t.Fatalf("pubpresence-load: %v", err)
		}
		sent := regexp.MustCompile(`sent (\d+) changes`).FindSubmatch(out)
		if sent == nil {
			t.Fatal("no 'sent' line")
		}
		total, _ := strconv.Atoi(string(sent[1]))
		if total < 100 {
			t.Errorf("sent %d changes, want about 200 (100/s for 2 s)", total)
		}
		for _, name := range []string{"live", "contact"} {
			m := regexp.MustCompile(name + ` +received (\d+) lost (\d+) dup (\d+) reordered (\d+)`).FindSubmatch(out)
			if m == nil {
				t.Errorf("no %s line", name)
				continue
			}
			if got := string(m[1]); got != string(sent[1]) || string(m[2]) != "0" || string(m[4]) != "0" {
				t.Errorf("%s: received %s of %d, lost %s, reordered %s", name, got, total, m[2], m[4])
			}
		}
		waitUntil(t, "no connection tracked after the tool logged out", func() bool {
			return svc.Metric(t, "pubpresence_tracked_connections") == 0
		})
	})
}
