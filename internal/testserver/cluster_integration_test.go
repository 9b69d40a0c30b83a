//go:build integration

package testserver

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestIntegrationCluster: StartCluster runs two ejabberd nodes joined in one
// cluster (both list both); users created once log in on either node; each
// node lists the sessions of both; one component connects to both nodes at
// once and, with WithPrivilege, is granted on each and gets each user's
// presence on the connection of the user's node. Kill of node 2 makes node
// 1 drop node 2's session; Restart brings node 2 back into the cluster, and
// so does Restart after Stop. Close leaves no process behind.
func TestIntegrationCluster(t *testing.T) {
	began := time.Now()
	c := StartCluster(t, WithPrivilege())
	t.Logf("StartCluster returned after %v", time.Since(began).Round(time.Millisecond))
	ctx := context.Background()
	n1, n2 := c.Nodes[0], c.Nodes[1]
	both := []string{n1.NodeName(), n2.NodeName()}
	slices.Sort(both)
	for i := range c.Nodes {
		if got, err := c.Members(ctx, i); err != nil || !slices.Equal(got, both) {
			t.Fatalf("members seen by node %d: %q, %v; want %q", i+1, got, err, both)
		}
	}
	if got := c.Addresses(); !slices.Equal(got, []string{n1.ComponentAddr, n2.ComponentAddr}) || got[0] == got[1] {
		t.Errorf("Addresses = %q", got)
	}
	if n1.Component != n2.Component || n1.Secret != n2.Secret || n1.Domain != n2.Domain {
		t.Errorf("nodes differ: %s/%s/%s and %s/%s/%s", n1.Domain, n1.Component, n1.Secret, n2.Domain, n2.Component, n2.Secret)
	}

	// Everything listens on loopback: epmd, and each node's c2s,
	// component, harness, HTTP API and distribution ports.
	for _, pid := range []int{c.epmd.cmd.Process.Pid, n1.Pid(), n2.Pid()} {
		addrs := listenAddrs(t, pid)
		t.Logf("pid %d listens on %s", pid, strings.Join(addrs, " "))
		if len(addrs) == 0 {
			t.Errorf("pid %d listens nowhere", pid)
		}
		for _, a := range addrs {
			if ip := net.ParseIP(a[:strings.LastIndexByte(a, ':')]); ip == nil || !ip.IsLoopback() {
				t.Errorf("pid %d listens on %s", pid, a)
			}
		}
	}
	for _, s := range c.Nodes {
		if a := "127.0.0.1:" + strconv.Itoa(s.dist.port); !slices.Contains(listenAddrs(t, s.Pid()), a) {
			t.Errorf("%s: no distribution listener on %s: %q", s.NodeName(), a, listenAddrs(t, s.Pid()))
		}
	}

	// Users are created once, through one node, and log in on both.
	if err := c.CreateUsers([]string{"alice", "bob"}, "pw"); err != nil {
		t.Fatal(err)
	}
	alice := loginUser(t, n1, "alice", "a1")
	bob := loginUser(t, n2, "bob", "b2")
	waitSessions(t, c, 0, 5*time.Second, "alice@localhost/a1", "bob@localhost/b2")
	waitSessions(t, c, 1, 5*time.Second, "alice@localhost/a1", "bob@localhost/b2")

	// One component, one connection per node, both accepted at once; each
	// node grants privileged presence on its own connection and forwards
	// the presence of its own users there.
	conns := make([]*componentConn, len(c.Nodes))
	for i, addr := range c.Addresses() {
		cc, err := dialComponent(addr, n1.Component, n1.Secret, 10*time.Second)
		if err != nil {
			t.Fatalf("component handshake on node %d (%s): %v", i+1, addr, err)
		}
		defer cc.close()
		conns[i] = cc
	}
	for i, cc := range conns {
		waitStanza(t, cc, 5*time.Second, "<privilege/> message on node "+strconv.Itoa(i+1), func(st componentStanza) bool {
			return st.XMLName.Local == "message" && st.Privilege != nil
		})
	}
	if err := bob.Presence("away", "on node 2", 0); err != nil {
		t.Fatal(err)
	}
	waitStanza(t, conns[1], 5*time.Second, "bob's presence on node 2's connection", func(st componentStanza) bool {
		return st.XMLName.Local == "presence" && st.From == "bob@localhost/b2" && st.Show == "away"
	})
	if err := alice.Presence("dnd", "on node 1", 0); err != nil {
		t.Fatal(err)
	}
	waitStanza(t, conns[0], 5*time.Second, "alice's presence on node 1's connection", func(st componentStanza) bool {
		if st.From == "bob@localhost/b2" {
			t.Errorf("bob's presence (node 2) arrived on node 1's connection")
		}
		return st.XMLName.Local == "presence" && st.From == "alice@localhost/a1" && st.Show == "dnd"
	})

	// Kill node 2: its connections end, node 1 drops its session.
	began = time.Now()
	if err := c.Kill(1); err != nil {
		t.Fatal(err)
	}
	killed := time.Since(began)
	if c.Running(1) || !c.Running(0) {
		t.Errorf("after Kill(1): Running = %v, %v; want true, false", c.Running(0), c.Running(1))
	}
	waitSessions(t, c, 0, 5*time.Second, "alice@localhost/a1")
	gone := time.Since(began)
	t.Logf("Kill(1) returned after %v; node 1 stopped listing bob's session %v after the kill", killed.Round(time.Millisecond), gone.Round(time.Millisecond))
	expectEnd(t, conns[1], "node 2's component connection")
	select {
	case <-bob.Done():
	case <-time.After(5 * time.Second):
		t.Error("bob's session on node 2 did not end after the kill")
	}
	if got, err := c.Members(ctx, 0); err != nil || !slices.Equal(got, []string{n1.NodeName()}) {
		t.Errorf("members seen by node 1 after the kill: %q, %v; want only itself", got, err)
	}
	if _, err := c.Members(ctx, 1); err == nil {
		t.Error("list_cluster on the killed node answered")
	}

	// Restart node 2: it rejoins; bob logs in there again; a component
	// connects there again.
	restarted := restartNode(t, c, 1)
	t.Logf("Restart(1) after Kill: rejoined in %v", restarted.Round(time.Millisecond))
	loginUser(t, n2, "bob", "b3")
	waitSessions(t, c, 0, 5*time.Second, "alice@localhost/a1", "bob@localhost/b3")
	waitSessions(t, c, 1, 5*time.Second, "alice@localhost/a1", "bob@localhost/b3")
	cc, err := dialComponent(n2.ComponentAddr, n2.Component, n2.Secret, 10*time.Second)
	if err != nil {
		t.Fatalf("component handshake on the restarted node 2: %v", err)
	}
	cc.close()

	// Stop node 2 cleanly, then Restart.
	began = time.Now()
	if err := c.Stop(1); err != nil {
		t.Fatal(err)
	}
	t.Logf("Stop(1) took %v", time.Since(began).Round(time.Millisecond))
	waitSessions(t, c, 0, 5*time.Second, "alice@localhost/a1")
	restarted = restartNode(t, c, 1)
	t.Logf("Restart(1) after Stop: rejoined in %v", restarted.Round(time.Millisecond))
	loginUser(t, n2, "bob", "b4")
	waitSessions(t, c, 0, 5*time.Second, "alice@localhost/a1", "bob@localhost/b4")

	// Node 1, the one node 2 joined first, comes back the same way; node
	// 2 keeps its session meanwhile.
	if err := c.Kill(0); err != nil {
		t.Fatal(err)
	}
	waitSessions(t, c, 1, 5*time.Second, "bob@localhost/b4")
	restarted = restartNode(t, c, 0)
	t.Logf("Restart(0) after Kill: rejoined in %v", restarted.Round(time.Millisecond))
	loginUser(t, n1, "alice", "a5")
	waitSessions(t, c, 1, 5*time.Second, "alice@localhost/a5", "bob@localhost/b4")

	// Close stops every process of the cluster, epmd included.
	pids := []int{n1.Pid(), n2.Pid(), c.epmd.cmd.Process.Pid}
	began = time.Now()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Close took %v", time.Since(began).Round(time.Millisecond))
	for _, pid := range pids {
		if err := waitGroupGone(pid); err != nil {
			t.Error(err)
		}
	}
	for _, pattern := range []string{"_" + c.id + "@127.0.0.1", "epmd -port " + strconv.Itoa(c.epmdPort) + " "} {
		out, err := exec.Command("pgrep", "-af", pattern).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("pgrep -af %q: %v, want none: %s", pattern, err, out)
		}
	}
	for _, s := range c.Nodes {
		for _, addr := range []string{s.C2SAddr, s.ComponentAddr, net.JoinHostPort("127.0.0.1", strconv.Itoa(s.dist.port))} {
			if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				conn.Close()
				t.Errorf("%s still accepts after Close", addr)
			}
		}
	}
	if err := c.Restart(1); err == nil {
		t.Error("Restart after Close: no error")
	}
}

// restartNode restarts node i and checks that both nodes list both; it
// returns how long Restart took.
func restartNode(t *testing.T, c *Cluster, i int) time.Duration {
	t.Helper()
	began := time.Now()
	if err := c.Restart(i); err != nil {
		t.Fatal(err)
	}
	took := time.Since(began)
	want := []string{c.Nodes[0].NodeName(), c.Nodes[1].NodeName()}
	slices.Sort(want)
	for j := range c.Nodes {
		if got, err := c.Members(context.Background(), j); err != nil || !slices.Equal(got, want) {
			t.Errorf("after Restart(%d): node %d lists %q, %v; want %q", i, j+1, got, err, want)
		}
	}
	return took
}

// waitSessions waits up to d until node i lists exactly the sessions want.
func waitSessions(t *testing.T, c *Cluster, i int, d time.Duration, want ...string) {
	t.Helper()
	slices.Sort(want)
	deadline := time.Now().Add(d)
	for {
		got, err := c.Sessions(context.Background(), i)
		if err == nil && slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d lists sessions %q (%v), want %q within %v", i+1, got, err, want, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// expectEnd reads cc until its stream ends, which must happen within 5 s.
func expectEnd(t *testing.T, cc *componentConn, what string) {
	t.Helper()
	if err := cc.conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := cc.nextElement()
		if err == nil {
			err = cc.dec.Skip()
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("%s still open 5 s after the kill", what)
			return
		}
		if err != nil {
			return
		}
	}
}

// listenAddrs returns the TCP addresses process pid listens on, from
// /proc ("127.0.0.1:PORT", "::1:PORT").
func listenAddrs(t *testing.T, pid int) []string {
	t.Helper()
	fds := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(fds)
	if err != nil {
		t.Fatalf("fds of pid %d: %v", pid, err)
	}
	socks := map[string]bool{}
	for _, e := range entries {
		if l, err := os.Readlink(filepath.Join(fds, e.Name())); err == nil {
			socks[l] = true
		}
	}
	var addrs []string
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" || !socks["socket:["+f[9]+"]"] {
				continue
			}
			hexIP, hexPort, _ := strings.Cut(f[1], ":")
			raw, err := hex.DecodeString(hexIP)
			port, perr := strconv.ParseUint(hexPort, 16, 16)
			if err != nil || perr != nil {
				t.Fatalf("%s: bad address %q", table, f[1])
			}
			// The kernel prints each 32-bit word in host order (little endian here).
			for i := 0; i+4 <= len(raw); i += 4 {
				slices.Reverse(raw[i : i+4])
			}
			addrs = append(addrs, net.IP(raw).String()+":"+strconv.Itoa(int(port)))
		}
	}
	slices.Sort(addrs)
	return addrs
}

// TestIntegrationClusterJoinFails: a join that fails (to a node that does
// not exist) ends node 2's start with an error that names the node, the
// step, ejabberd's reason and the node's log, without waiting for the
// join's time bound.
func TestIntegrationClusterJoinFails(t *testing.T) {
	skipUnlessInstalled(t, Ejabberd, clusterInstalled())
	o, err := buildOptions(Ejabberd, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := newCluster(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	}()
	if err := c.startEpmd(); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	err = c.startNode(1, "nosuch_"+c.id+"@127.0.0.1")
	took := time.Since(began)
	if err == nil {
		t.Fatal("start with a join to a node that does not exist: no error")
	}
	t.Logf("after %v: %.300s", took.Round(time.Millisecond), err)
	msg := err.Error()
	for _, want := range []string{"cluster node 2 (" + c.Nodes[1].NodeName(), ": join nosuch_", "{error,{no_ping,", "--- log tail of "} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q", want)
		}
	}
	if took > joinTimeout {
		t.Errorf("the failure took %v, the join's whole bound", took)
	}
}
