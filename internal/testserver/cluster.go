// Clusters: StartCluster runs two ejabberd nodes joined in one Mnesia
// cluster on loopback, for tests of a component that keeps one connection
// per node. The cluster has its own epmd on a private port, a random cookie,
// node names unique to it (ej1_<id>@127.0.0.1, ej2_<id>@127.0.0.1) and a
// fixed distribution port per node, all on 127.0.0.1. Each node is a Server
// with its own directory and ports, and the same config otherwise: the same
// component name and secret, and no domain_balancing, so ejabberd hands a
// user's stanzas to a component connection on that user's node. Node 2 joins
// node 1 on its first start; a node started again after Kill or Stop rejoins
// by itself. Users, pubsub nodes and the session list are shared by the
// nodes; mod_privilege (WithPrivilege) grants per node and forwards a user's
// presence only to a connection on the user's node.
package testserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/internal/xmpp"
)

// Sizes and time bounds of a cluster.
const (
	clusterSize  = 2
	portsPerNode = 5 // c2s, component, harness, HTTP API, distribution

	epmdTimeout    = 5 * time.Second
	joinTimeout    = 30 * time.Second // node 2's first start: from Start's return to the join's end
	probeTimeout   = 10 * time.Second // the component port answers a stream header
	membersTimeout = 20 * time.Second // every running node lists every running node
	apiTimeout     = 5 * time.Second  // one HTTP API call of the harness
)

// The lines joinEval prints on the node's console (stdout).
const (
	joinedMarker     = "pubpresence-harness: joined"
	joinFailedMarker = "pubpresence-harness: join failed"
)

// clusterNodeName is what the harness names a node: it is put into an
// Erlang binary literal by joinEval.
var clusterNodeName = regexp.MustCompile(`^[a-z][a-z0-9_]*@127\.0\.0\.1$`)

// Cluster is a running two-node ejabberd cluster made by StartCluster.
// Its methods are safe for concurrent use; Kill, Stop, Restart and Close
// run one at a time.
type Cluster struct {
	// Nodes are the cluster's nodes, node 1 (index 0) first. Each is a
	// Server with its own directory and ports: C2SAddr, ComponentAddr,
	// APIURL, Harness, Dir, LogPath, LogTail; NodeName is its Erlang node.
	// Domain, Component, Secret and Pubsub are the same on every node.
	// Stop, kill and start a node with the Cluster's methods.
	Nodes []*Server
	// Dir holds the nodes' directories (ej1, ej2) and epmd's output.
	Dir string

	id       string // in the node names: unique to this cluster
	cookie   string
	epmdPort int

	mu     sync.Mutex // serialises Kill, Stop, Restart and Close
	epmd   *process
	closed bool
}

// distNode is the Erlang distribution of a cluster node.
type distNode struct {
	name     string // "ej1_0a1b2c@127.0.0.1"
	cookie   string // the cluster's
	epmdPort int    // the cluster's epmd, on 127.0.0.1
	port     int    // the node's distribution listener, on 127.0.0.1
	// join is the node to join at the next start (node 2's first), ""
	// for none: see joinEval.
	join string
}

// args are erl's arguments for the distribution: a long name on
// 127.0.0.1, the cluster's cookie, no epmd of its own (the cluster's, by
// ERL_EPMD_PORT), and one fixed listen port bound to 127.0.0.1 only.
func (d *distNode) args() []string {
	port := strconv.Itoa(d.port)
	return []string{
		"-name", d.name,
		"-setcookie", d.cookie,
		"-start_epmd", "false",
		"-kernel", "inet_dist_use_interface", "{127,0,0,1}",
		"inet_dist_listen_min", port, "inet_dist_listen_max", port,
	}
}

// env is what the node's environment adds: the cluster's epmd.
func (d *distNode) env() []string {
	return []string{"ERL_EPMD_PORT=" + strconv.Itoa(d.epmdPort), "ERL_EPMD_ADDRESS=127.0.0.1"}
}

// joinEval is erl's -eval that joins the node to the cluster of node. It
// comes after -s ejabberd, which returns once ejabberd has started: a join
// sent earlier can leave the node with ejabberd stopped for good. It prints
// joinedMarker, or joinFailedMarker and the reason, on stdout.
func joinEval(node string) string {
	return fmt.Sprintf(`try ejabberd_admin:join_cluster(<<"%s">>) of `+
		`ok -> io:format("%s~n"); `+
		`Other -> io:format("%s: ~p~n", [Other]) `+
		`catch Class:Reason -> io:format("%s: ~p:~p~n", [Class, Reason]) end.`,
		node, joinedMarker, joinFailedMarker, joinFailedMarker)
}

// NodeName returns the Erlang node of a cluster node
// ("ej1_0a1b2c@127.0.0.1"), "" on a server that is not in a Cluster.
func (s *Server) NodeName() string {
	if s.dist == nil {
		return ""
	}
	return s.dist.name
}

// StartCluster starts a private epmd and two ejabberd nodes joined in one
// cluster, on loopback, and registers t.Cleanup(Close). opts are those of
// StartEjabberd, except WithPorts and WithDir: every node gets free ports
// and a fresh directory. Node 1 starts first; node 2 starts once node 1
// answers a component stream header, and joins it. StartCluster returns
// when both nodes' component ports answer a stream header and list_cluster
// on each node lists both. When ejabberd is not installed it skips the
// test, or fails it if PUBPRESENCE_REQUIRE_SERVERS is "1". When the test
// has failed, the cleanup logs the tail of each node's log.
func StartCluster(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	skipUnlessInstalled(t, Ejabberd, clusterInstalled())
	o, err := buildOptions(Ejabberd, opts)
	if err == nil {
		err = o.checkCluster()
	}
	if err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	root := tempDir(t)
	var c *Cluster
	for attempt := 1; ; attempt++ {
		dir := root
		if attempt > 1 {
			dir = filepath.Join(root, fmt.Sprintf("retry%d", attempt))
		}
		if c, err = newCluster(dir, o); err != nil {
			break
		}
		err = c.start(t.Logf)
		if err == nil {
			break
		}
		if cerr := c.Close(); cerr != nil {
			t.Logf("stop the cluster that failed to start: %v", cerr)
		}
		if !errors.Is(err, errAddrInUse) || attempt == startAttempts {
			break
		}
		t.Logf("cluster: port taken, retrying with fresh ports: %v", err)
	}
	if err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("stop cluster: %v", err)
		}
		if t.Failed() {
			for _, s := range c.Nodes {
				t.Logf("cluster node %s log tail (%s):\n%s", s.NodeName(), s.LogPath, s.LogTail(40))
			}
		}
	})
	return c
}

// clusterInstalled reports why a cluster cannot run here, or nil.
func clusterInstalled() error {
	if err := installed(Ejabberd); err != nil {
		return err
	}
	_, err := exec.LookPath("epmd")
	return err
}

// checkCluster reports options a cluster does not support.
func (o options) checkCluster() error {
	if o.c2sPort != 0 {
		return errors.New("WithPorts: a cluster picks free ports for every node")
	}
	if o.dir != "" {
		return errors.New("WithDir: a cluster starts from fresh directories (its node names are new each time, and a Mnesia directory holds the names it was made with)")
	}
	return nil
}

// newCluster makes the directories and configs of a cluster in dir, with
// free ports, new node names and a new cookie. It starts nothing.
func newCluster(dir string, o options) (*Cluster, error) {
	if err := o.checkCluster(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("cluster dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cluster dir: %w", err)
	}
	ipv6 := hasIPv6Loopback()
	ports, err := loopbackPorts(clusterSize*portsPerNode+1, ipv6)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, id: randomHex(3), cookie: randomHex(16), epmdPort: ports[len(ports)-1]}
	var tlsf *tlsFiles
	for i := range clusterSize {
		s, err := newFiles(Ejabberd, filepath.Join(dir, fmt.Sprintf("ej%d", i+1)), o)
		if err != nil {
			return nil, err
		}
		p := ports[i*portsPerNode : (i+1)*portsPerNode]
		s.setAddrs(p[0], p[1], p[2], p[3], ipv6)
		s.dist = &distNode{
			name:     fmt.Sprintf("ej%d_%s@127.0.0.1", i+1, c.id),
			cookie:   c.cookie,
			epmdPort: c.epmdPort,
			port:     p[4],
		}
		if !clusterNodeName.MatchString(s.dist.name) {
			return nil, fmt.Errorf("cluster node name %q: want %s", s.dist.name, clusterNodeName)
		}
		if o.tls {
			// One CA for the cluster: a client trusts every node alike.
			if tlsf == nil {
				if tlsf, err = writeTLSFiles(dir, s.certNames()); err != nil {
					return nil, err
				}
			}
			s.tls, s.CAFile = tlsf, tlsf.ca
		}
		if err := s.writeConfig(); err != nil {
			return nil, err
		}
		c.Nodes = append(c.Nodes, s)
	}
	return c, nil
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}

// start starts epmd, node 1, then node 2 with the join, and waits until
// both list both. On an error the caller must Close the cluster.
func (c *Cluster) start(logf func(format string, args ...any)) error {
	began := time.Now()
	if err := c.startEpmd(); err != nil {
		return err
	}
	epmdUp := time.Since(began)
	if err := c.startNode(0, ""); err != nil {
		return err
	}
	node1 := time.Since(began)
	if err := c.startNode(1, c.Nodes[0].NodeName()); err != nil {
		return err
	}
	node2 := time.Since(began)
	if err := c.waitMembers(1); err != nil {
		return err
	}
	total := time.Since(began)
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	logf("ejabberd cluster started in %v (epmd %v, node 1 ready %v, node 2 ready and joined %v, members agree %v): %s c2s %s component %s, %s c2s %s component %s, epmd 127.0.0.1:%d, dir %s",
		ms(total), ms(epmdUp), ms(node1-epmdUp), ms(node2-node1), ms(total-node2),
		c.Nodes[0].NodeName(), c.Nodes[0].C2SAddr, c.Nodes[0].ComponentAddr,
		c.Nodes[1].NodeName(), c.Nodes[1].C2SAddr, c.Nodes[1].ComponentAddr, c.epmdPort, c.Dir)
	return nil
}

// startEpmd runs the cluster's epmd in the foreground, as a child in its
// own process group, and waits until it listens on its port.
func (c *Cluster) startEpmd() error {
	out, err := os.OpenFile(c.epmdLog(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("cluster epmd: %w", err)
	}
	defer out.Close()
	port := strconv.Itoa(c.epmdPort)
	cmd := exec.Command("epmd", "-port", port, "-address", "127.0.0.1")
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), "ERL_EPMD_ADDRESS=127.0.0.1", "ERL_EPMD_PORT="+port, "HOME="+c.Dir)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("cluster epmd: %w", err)
	}
	p := startedProcess(cmd)
	c.epmd = p
	// The port must be held by our epmd: a second epmd on a taken port
	// exits 0 without a word, and the first one would answer.
	deadline := time.Now().Add(epmdTimeout)
	for !listensOn(cmd.Process.Pid, c.epmdPort) {
		if p.exited() {
			return fmt.Errorf("cluster epmd (pid %d) on 127.0.0.1:%d: %w: exited at start (%v); a stranger has the port\n%s",
				cmd.Process.Pid, c.epmdPort, errAddrInUse, p.waitErr, tail(c.epmdLog(), 10))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster epmd (pid %d): not listening on 127.0.0.1:%d after %v\n%s",
				cmd.Process.Pid, c.epmdPort, epmdTimeout, tail(c.epmdLog(), 10))
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

func (c *Cluster) epmdLog() string { return filepath.Join(c.Dir, "epmd.log") }

// listensOn reports whether process pid has a TCP socket listening on
// 127.0.0.1:port (from /proc: the socket inodes of its fds against
// /proc/net/tcp).
func listensOn(pid, port int) bool {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return false
	}
	inodes := map[string]bool{}
	want := fmt.Sprintf("0100007F:%04X", port)
	for _, line := range strings.Split(string(b), "\n")[1:] {
		// sl local rem st tx:rx tr:tm retrnsmt uid timeout inode
		f := strings.Fields(line)
		if len(f) > 9 && f[1] == want && f[3] == "0A" {
			inodes["socket:["+f[9]+"]"] = true
		}
	}
	if len(inodes) == 0 {
		return false
	}
	fds := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(fds)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if l, err := os.Readlink(filepath.Join(fds, e.Name())); err == nil && inodes[l] {
			return true
		}
	}
	return false
}

// startNode starts node i (from its index) and waits until its component
// port answers a stream header; with join, node i joins that node first.
// An error names the node and the step, with the tail of its log.
func (c *Cluster) startNode(i int, join string) error {
	s := c.Nodes[i]
	console := filepath.Join(s.Dir, "console.log")
	offset := fileSize(console)
	s.dist.join = join
	err := s.Start()
	s.dist.join = ""
	if err != nil {
		if !errors.Is(err, errAddrInUse) && logSince(console, offset, "register/listen error: eaddrinuse") {
			err = fmt.Errorf("%w: distribution port %d: %v", errAddrInUse, s.dist.port, err)
		}
		return c.nodeErr(i, "start", err)
	}
	if join != "" {
		if err := waitJoined(s, console, offset, time.Now().Add(joinTimeout)); err != nil {
			return c.nodeErr(i, "join "+join, err)
		}
	}
	if err := probeComponent(s, time.Now().Add(probeTimeout)); err != nil {
		return c.nodeErr(i, "wait until the component port "+s.ComponentAddr+" answers a stream header", err)
	}
	return nil
}

// nodeErr wraps err with node i's name, the step and its log tail.
func (c *Cluster) nodeErr(i int, step string, err error) error {
	s := c.Nodes[i]
	return fmt.Errorf("cluster node %d (%s, index %d): %s: %w\n--- log tail of %s (%s) ---\n%s",
		i+1, s.NodeName(), i, step, err, s.NodeName(), s.LogPath, s.LogTail(30))
}

// waitJoined waits until node s has printed the outcome of joinEval on
// its console (the file at path, after offset).
func waitJoined(s *Server, path string, offset int64, deadline time.Time) error {
	done := s.Done()
	for {
		if joined, err := joinResult(path, offset); joined || err != nil {
			return err
		}
		select {
		case <-done:
			if joined, err := joinResult(path, offset); joined || err != nil {
				return err
			}
			return errors.New("the node exited before the join ended")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %q on its console (%s) %v after ejabberd started", joinedMarker, path, joinTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// joinResult reads the console at path after offset: joined when the join
// succeeded, an error when it failed, neither while it runs.
func joinResult(path string, offset int64) (joined bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return false, nil
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, offset, 1<<20))
	if err != nil {
		return false, nil
	}
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, joinFailedMarker):
			return false, errors.New(strings.TrimSpace(line))
		case strings.TrimSpace(line) == joinedMarker:
			return true, nil
		}
	}
	return false, nil
}

// probeComponent waits until s's component port answers a stream header:
// ejabberd accepts TCP connections on its ports before it has started.
func probeComponent(s *Server, deadline time.Time) error {
	for {
		err := streamHeader(s.ComponentAddr, s.Component, time.Second)
		if err == nil {
			return nil
		}
		if s.Pid() == 0 {
			return fmt.Errorf("the node exited: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no stream header in %v: %w", probeTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// streamHeader opens a component stream to addr for the component name
// and waits at most timeout for the server's stream header.
func streamHeader(addr, name string, timeout time.Duration) error {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	c := &componentConn{conn: conn, dec: xml.NewDecoder(conn), name: name}
	header := fmt.Sprintf("<?xml version='1.0'?><stream:stream xmlns='%s' xmlns:stream='%s' to='%s'>",
		xmpp.NSComponent, xmpp.NSStream, xmlEscape(name))
	if _, err := io.WriteString(conn, header); err != nil {
		return fmt.Errorf("send stream header: %w", err)
	}
	if _, err := c.readStreamHeader(); err != nil {
		return err
	}
	_, _ = io.WriteString(conn, "</stream:stream>")
	return nil
}

// waitMembers waits until list_cluster on every running node lists every
// running node. Node i is the one whose log an error shows.
func (c *Cluster) waitMembers(i int) error {
	deadline := time.Now().Add(membersTimeout)
	for {
		var want []string
		for _, s := range c.Nodes {
			if s.Pid() != 0 {
				want = append(want, s.NodeName())
			}
		}
		slices.Sort(want)
		var problems []string
		for j, s := range c.Nodes {
			if s.Pid() == 0 {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
			got, err := c.Members(ctx, j)
			cancel()
			switch {
			case err != nil:
				problems = append(problems, err.Error())
			case !slices.Equal(got, want):
				problems = append(problems, fmt.Sprintf("%s lists %q", s.NodeName(), got))
			}
		}
		if len(problems) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return c.nodeErr(i, "wait until list_cluster on every running node lists "+strings.Join(want, " and "),
				fmt.Errorf("not after %v: %s", membersTimeout, strings.Join(problems, "; ")))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// node returns node i, or an error naming the bad index.
func (c *Cluster) node(i int) (*Server, error) {
	if i < 0 || i >= len(c.Nodes) {
		return nil, fmt.Errorf("cluster node index %d: want 0..%d", i, len(c.Nodes)-1)
	}
	return c.Nodes[i], nil
}

// Kill sends SIGKILL to node i (0 is node 1) and its process group, and
// waits until it has been reaped. Killing a stopped node does nothing.
// The other node drops the node's sessions at once, but sends no
// unavailable presence for them.
func (c *Cluster) Kill(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, err := c.node(i)
	if err != nil {
		return err
	}
	return s.Kill()
}

// Stop sends SIGTERM to node i and waits for it to exit, at most 10 s, then
// kills it (and reports that). Stopping a stopped node does nothing. When
// both nodes are stopped, the one stopped first does not start again until
// the other one runs: Mnesia waits for the node with the newest tables.
func (c *Cluster) Stop(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, err := c.node(i)
	if err != nil {
		return err
	}
	if err := s.Stop(); err != nil {
		return fmt.Errorf("cluster node %d (%s): %w", i+1, s.NodeName(), err)
	}
	return nil
}

// Restart starts node i again after Kill or Stop (a running node is
// stopped first), with the same name, directory, config and ports. The
// node rejoins the cluster by itself. Restart returns when its component
// port answers a stream header and list_cluster on every running node
// lists every running node (both, when the other one runs), or with an
// error naming the step, at most about 50 s later. When both nodes are
// down, restart the one that went down last first: the other one does not
// start without it (see Stop).
func (c *Cluster) Restart(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("restart a node of a closed cluster")
	}
	s, err := c.node(i)
	if err != nil {
		return err
	}
	if err := s.Stop(); err != nil {
		return fmt.Errorf("cluster node %d (%s): %w", i+1, s.NodeName(), err)
	}
	if err := c.startNode(i, ""); err != nil {
		for j := range c.Nodes {
			if j != i && !c.Running(j) {
				return fmt.Errorf("%w\n(node %d is not running either: a node stopped or killed before the other one waits for it at start-up)", err, j+1)
			}
		}
		return err
	}
	return c.waitMembers(i)
}

// Running reports whether node i runs (it may still be starting).
func (c *Cluster) Running(i int) bool {
	s, err := c.node(i)
	return err == nil && s.Pid() != 0
}

// Addresses returns the component address (ComponentAddr) of every node,
// node 1 first.
func (c *Cluster) Addresses() []string {
	addrs := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		addrs[i] = s.ComponentAddr
	}
	return addrs
}

// CreateUsers creates accounts <local>@Domain with password (or resets the
// password of existing ones) through the first running node, as
// Server.CreateUsers does. Accounts are in Mnesia, shared by the cluster:
// they log in on every node.
func (c *Cluster) CreateUsers(locals []string, password string) error {
	for _, s := range c.Nodes {
		if s.Pid() != 0 {
			return s.CreateUsers(locals, password)
		}
	}
	return errors.New("create users: no cluster node is running")
}

// Members returns the cluster's running nodes as node i sees them
// (ejabberd's list_cluster, through node i's HTTP API), sorted.
func (c *Cluster) Members(ctx context.Context, i int) ([]string, error) {
	var names []string
	if err := c.api(ctx, i, "list_cluster", &names); err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

// Sessions returns the full JID of every c2s session of the cluster as
// node i sees it (ejabberd's connected_users_info, through node i's HTTP
// API), sorted. Sessions live in a table shared by the nodes: each node
// lists the sessions of every running node.
func (c *Cluster) Sessions(ctx context.Context, i int) ([]string, error) {
	var rows []struct {
		JID string `json:"jid"`
	}
	if err := c.api(ctx, i, "connected_users_info", &rows); err != nil {
		return nil, err
	}
	jids := make([]string, len(rows))
	for j, r := range rows {
		jids[j] = r.JID
	}
	slices.Sort(jids)
	return jids, nil
}

// apiClient calls the nodes' HTTP APIs: on loopback, never through a proxy,
// and with no idle connection kept to a node that may be killed.
var apiClient = &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}

// api POSTs {} to node i's HTTP API command and decodes the JSON answer
// into v. ctx without a deadline gets apiTimeout.
func (c *Cluster) api(ctx context.Context, i int, command string, v any) error {
	s, err := c.node(i)
	if err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, apiTimeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.APIURL+"/"+command, strings.NewReader("{}"))
	if err != nil {
		return fmt.Errorf("%s on %s: %w", command, s.NodeName(), err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := apiClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s on %s: %w", command, s.NodeName(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s on %s: read answer: %w", command, s.NodeName(), err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s on %s: HTTP %s: %.200s", command, s.NodeName(), resp.Status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s on %s: answer %.200q: %w", command, s.NodeName(), body, err)
	}
	return nil
}

// Close stops the cluster: SIGTERM to both nodes at once (each waited for
// at most 10 s, then killed), then epmd. It reports a node that had to be
// killed or had died on its own. Closing a closed cluster does nothing.
// StartCluster's cleanup calls it.
func (c *Cluster) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	errs := make([]error, len(c.Nodes)+1)
	var wg sync.WaitGroup
	for i, s := range c.Nodes {
		wg.Go(func() {
			if err := s.Stop(); err != nil {
				errs[i] = fmt.Errorf("cluster node %d (%s): %w", i+1, s.NodeName(), err)
			}
		})
	}
	wg.Wait()
	errs[len(c.Nodes)] = c.stopEpmd()
	return errors.Join(errs...)
}

// stopEpmd sends epmd SIGTERM and waits at most epmdTimeout for it to
// exit, then kills it.
func (c *Cluster) stopEpmd() error {
	p := c.epmd
	if p == nil {
		return nil
	}
	c.epmd = nil
	pid := p.cmd.Process.Pid
	if p.exited() {
		return fmt.Errorf("cluster epmd (pid %d): it had exited on its own: %v", pid, p.waitErr)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(epmdTimeout):
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("cluster epmd (pid %d): still running %v after SIGTERM, killed", pid, epmdTimeout)
}
