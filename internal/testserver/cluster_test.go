package testserver

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestDistArgs(t *testing.T) {
	d := &distNode{name: "ej2_abcdef@127.0.0.1", cookie: "c00k1e", epmdPort: 4400, port: 4402}
	want := []string{"-name", "ej2_abcdef@127.0.0.1", "-setcookie", "c00k1e", "-start_epmd", "false",
		"-kernel", "inet_dist_use_interface", "{127,0,0,1}", "inet_dist_listen_min", "4402", "inet_dist_listen_max", "4402"}
	if got := d.args(); !slices.Equal(got, want) {
		t.Errorf("args = %q\nwant   %q", got, want)
	}
	if got := d.env(); !slices.Contains(got, "ERL_EPMD_PORT=4400") {
		t.Errorf("env = %q, want ERL_EPMD_PORT=4400", got)
	}
}

func TestJoinEval(t *testing.T) {
	got := joinEval("ej1_abcdef@127.0.0.1")
	for _, want := range []string{
		`ejabberd_admin:join_cluster(<<"ej1_abcdef@127.0.0.1">>)`, // a binary, not a string or an atom
		`ok -> io:format("` + joinedMarker + `~n")`,
		joinFailedMarker + ": ~p~n",
		"catch Class:Reason ->",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("joinEval lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "'") {
		t.Errorf("joinEval has a quote a shell would need: %s", got)
	}
	for _, name := range []string{"ej1_abcdef@127.0.0.1", "ej12_0a@127.0.0.1"} {
		if !clusterNodeName.MatchString(name) {
			t.Errorf("%q rejected", name)
		}
	}
	for _, name := range []string{"ej1@localhost", `ej1">>@127.0.0.1`, "Ej1@127.0.0.1", "ej1@127.0.0.1 "} {
		if clusterNodeName.MatchString(name) {
			t.Errorf("%q accepted", name)
		}
	}
}

func TestJoinResult(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	if joined, err := joinResult(path, 0); joined || err != nil {
		t.Errorf("no console yet: %v, %v; want still waiting", joined, err)
	}
	old := joinFailedMarker + ": {error,old}\n" + joinedMarker + "\n"
	if err := os.WriteFile(path, []byte(old+"[info] ejabberd is started\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	offset := int64(len(old)) // an earlier start's lines do not count
	if joined, err := joinResult(path, offset); joined || err != nil {
		t.Errorf("before the outcome: %v, %v; want still waiting", joined, err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "%s: {error,{no_ping,'ej1_x@127.0.0.1'}}\n", joinFailedMarker)
	f.Close()
	if joined, err := joinResult(path, offset); joined || err == nil || !strings.Contains(err.Error(), "no_ping") {
		t.Errorf("after a failure: %v, %v; want the failure", joined, err)
	}
	if joined, err := joinResult(path, 0); joined || err == nil || !strings.Contains(err.Error(), "{error,old}") {
		t.Errorf("from offset 0: %v, %v; want the first outcome", joined, err)
	}
	if err := os.WriteFile(path, []byte("x\n"+joinedMarker+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if joined, err := joinResult(path, 0); !joined || err != nil {
		t.Errorf("after the join: %v, %v; want joined", joined, err)
	}
}

func TestCheckCluster(t *testing.T) {
	for _, opt := range []Option{WithPorts(15222, 15347), WithDir(t.TempDir())} {
		o, err := buildOptions(Ejabberd, []Option{opt})
		if err != nil {
			t.Fatal(err)
		}
		if err := o.checkCluster(); err == nil {
			t.Errorf("checkCluster accepted %+v", o)
		}
		if _, err := newCluster(t.TempDir(), o); err == nil {
			t.Errorf("newCluster accepted %+v", o)
		}
	}
	o, err := buildOptions(Ejabberd, []Option{WithPrivilege(), WithTLS(), WithHost("other.localhost"), WithComponent("pp.localhost", "x")})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.checkCluster(); err != nil {
		t.Errorf("checkCluster: %v", err)
	}
}

// newTestCluster makes a cluster's files (nothing runs).
func newTestCluster(t *testing.T, opts ...Option) *Cluster {
	t.Helper()
	o, err := buildOptions(Ejabberd, opts)
	if err != nil {
		t.Fatal(err)
	}
	c, err := newCluster(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewCluster(t *testing.T) {
	c := newTestCluster(t, WithPrivilege(), WithTLS())
	other := newTestCluster(t)
	if c.id == other.id || c.cookie == other.cookie || len(c.cookie) != 32 {
		t.Errorf("ids %q %q, cookies %q %q: want new ones for every cluster", c.id, other.id, c.cookie, other.cookie)
	}
	if len(c.Nodes) != 2 {
		t.Fatalf("%d nodes", len(c.Nodes))
	}
	ports := map[int]string{c.epmdPort: "epmd"}
	configs := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		d := s.dist
		if want := fmt.Sprintf("ej%d_%s@127.0.0.1", i+1, c.id); s.NodeName() != want {
			t.Errorf("node %d: name %q, want %q", i+1, s.NodeName(), want)
		}
		if d.cookie != c.cookie || d.epmdPort != c.epmdPort || d.join != "" {
			t.Errorf("node %d: dist %+v, cluster cookie %q epmd %d", i+1, d, c.cookie, c.epmdPort)
		}
		if s.Dir != filepath.Join(c.Dir, fmt.Sprintf("ej%d", i+1)) {
			t.Errorf("node %d: dir %s, cluster dir %s", i+1, s.Dir, c.Dir)
		}
		if s.CAFile == "" || s.CAFile != c.Nodes[0].CAFile {
			t.Errorf("node %d: CA file %q, want the cluster's one", i+1, s.CAFile)
		}
		for what, p := range map[string]int{"c2s": s.c2sPort, "component": s.componentPort, "harness": s.harnessPort, "api": s.apiPort, "dist": d.port} {
			if prev, dup := ports[p]; dup || p == 0 {
				t.Errorf("node %d: %s port %d also %s", i+1, what, p, prev)
			}
			ports[p] = fmt.Sprintf("node %d %s", i+1, what)
		}
		b, err := os.ReadFile(s.ConfigPath)
		if err != nil {
			t.Fatal(err)
		}
		cfg := string(b)
		checkConfig(t, cfg,
			[]string{"      - list_cluster\n", "      - connected_users_info\n", "  mod_privilege:\n", "  mod_admin_extra: {}",
				"    port: " + strconv.Itoa(s.componentPort) + "\n", `"pubpresence.localhost":` + "\n        password: \"s3cret\"\n"},
			[]string{"domain_balancing", "component_number", `"*"`, "0.0.0.0"})
		// The nodes' configs differ only in their ports, their own
		// directories and the harness's secret.
		for _, p := range []int{s.c2sPort, s.componentPort, s.harnessPort, s.apiPort} {
			cfg = strings.ReplaceAll(cfg, strconv.Itoa(p), "PORT")
		}
		cfg = strings.ReplaceAll(cfg, s.Dir, "DIR")
		configs[i] = strings.ReplaceAll(cfg, s.harnessSecret, "SECRET")
	}
	if configs[0] != configs[1] {
		t.Errorf("the nodes' configs differ beyond ports and dirs:\n%s\n---\n%s", configs[0], configs[1])
	}

	// A single server's HTTP API allows only connected_users_info.
	s, err := newFiles(Ejabberd, t.TempDir(), defaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	s.setAddrs(15222, 15347, 15348, 15349, false)
	cfg, err := renderConfig(Ejabberd, s.configData())
	if err != nil {
		t.Fatal(err)
	}
	checkConfig(t, cfg, []string{"- connected_users_info"}, []string{"list_cluster", "harness: cluster"})
	if s.NodeName() != "" {
		t.Errorf("NodeName of a single server = %q", s.NodeName())
	}
}

func TestClusterCommand(t *testing.T) {
	if _, err := ejabberdLibs(); err != nil {
		t.Skipf("ejabberd not installed: %v", err)
	}
	c := newTestCluster(t)
	s := c.Nodes[1]
	s.dist.join = c.Nodes[0].NodeName()
	cmd, err := s.command()
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Join(cmd.Args, " ")
	for _, want := range []string{
		"-name " + s.NodeName() + " -setcookie " + c.cookie + " -start_epmd false",
		fmt.Sprintf("inet_dist_listen_min %d inet_dist_listen_max %d", s.dist.port, s.dist.port),
		"-s ejabberd -eval try ejabberd_admin:join_cluster(<<\"" + c.Nodes[0].NodeName() + "\">>)", // the join after the start
	} {
		if !strings.Contains(args, want) {
			t.Errorf("command lacks %q:\n%s", want, args)
		}
	}
	env := strings.Join(cmd.Env, "\n") + "\n"
	for _, want := range []string{"\nERL_EPMD_PORT=" + strconv.Itoa(c.epmdPort) + "\n", "\nHOME=" + s.Dir + "\n"} {
		if !strings.Contains(env, want) {
			t.Errorf("environment lacks %q", strings.TrimSpace(want))
		}
	}
	s.dist.join = ""
	if cmd, err = s.command(); err != nil {
		t.Fatal(err)
	}
	// The only -eval left is the one every ejabberd gets (rosterInRAMEval).
	if args := strings.Join(cmd.Args, " "); strings.Contains(args, "join_cluster") || !strings.HasSuffix(args, "-s ejabberd -eval "+rosterInRAMEval) {
		t.Errorf("a restart joins again: %s", args)
	}
	single, err := newFiles(Ejabberd, t.TempDir(), defaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if cmd, err = single.command(); err != nil {
		t.Fatal(err)
	}
	if args := strings.Join(cmd.Args, " "); strings.Contains(args, "-name") || strings.Contains(args, "-setcookie") {
		t.Errorf("a single server has distribution: %s", args)
	}
	o := defaultOptions()
	WithErlangFlags("+sbwt", "none")(&o)
	flagged, err := newFiles(Ejabberd, t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	if cmd, err = flagged.command(); err != nil {
		t.Fatal(err)
	}
	// The flags go with the emulator's own, before -s ejabberd.
	if args := strings.Join(cmd.Args, " "); !strings.Contains(args, " +sbwt none -s ejabberd") {
		t.Errorf("WithErlangFlags: the flags are not before -s ejabberd: %s", args)
	}
}

func TestListensOn(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if !listensOn(os.Getpid(), port) {
		t.Errorf("listensOn(self, %d) = false while listening", port)
	}
	if listensOn(os.Getppid(), port) {
		t.Errorf("listensOn(parent, %d) = true", port)
	}
	l.Close()
	if listensOn(os.Getpid(), port) {
		t.Errorf("listensOn(self, %d) = true after Close", port)
	}
}

func TestLoopbackPorts(t *testing.T) {
	ports, err := loopbackPorts(11, hasIPv6Loopback())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p == 0 || seen[p] {
			t.Errorf("ports %v: want 11 distinct non-zero ones", ports)
		}
		seen[p] = true
	}
}

// TestClusterAPI: Members and Sessions POST {} to the node's HTTP API and
// read ejabberd's answers; other answers are errors naming the node.
func TestClusterAPI(t *testing.T) {
	var calls []string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls = append(calls, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
		switch r.URL.Path {
		case "/api/list_cluster":
			fmt.Fprint(w, `["ej2_x@127.0.0.1","ej1_x@127.0.0.1"]`)
		case "/api/connected_users_info":
			fmt.Fprint(w, `[{"jid":"bob@localhost/b2","connection":"c2s","ip":"127.0.0.1","port":1,"priority":0,"node":"ej2_x@127.0.0.1","uptime":1,"status":"available","resource":"b2","statustext":""},`+
				`{"jid":"alice@localhost/a1","connection":"c2s","ip":"127.0.0.1","port":2,"priority":0,"node":"ej1_x@127.0.0.1","uptime":1,"status":"dnd","resource":"a1","statustext":""}]`)
		default:
			http.Error(w, `"no such command"`, http.StatusNotFound)
		}
	}))
	defer api.Close()
	s := &Server{APIURL: api.URL + "/api", dist: &distNode{name: "ej1_x@127.0.0.1"}}
	c := &Cluster{Nodes: []*Server{s}}
	ctx := context.Background()
	members, err := c.Members(ctx, 0)
	if err != nil || !slices.Equal(members, []string{"ej1_x@127.0.0.1", "ej2_x@127.0.0.1"}) {
		t.Errorf("Members = %q, %v", members, err)
	}
	sessions, err := c.Sessions(ctx, 0)
	if err != nil || !slices.Equal(sessions, []string{"alice@localhost/a1", "bob@localhost/b2"}) {
		t.Errorf("Sessions = %q, %v", sessions, err)
	}
	if want := "POST /api/list_cluster application/json"; len(calls) == 0 || calls[0] != want {
		t.Errorf("calls %q, want %q first", calls, want)
	}
	var got []string
	if err := c.api(ctx, 0, "nosuch", &got); err == nil || !strings.Contains(err.Error(), "ej1_x@127.0.0.1") || !strings.Contains(err.Error(), "404") {
		t.Errorf("a 404: %v, want an error naming the node and the status", err)
	}
	if _, err := c.Members(ctx, 1); err == nil {
		t.Error("Members of a node index out of range: no error")
	}
	if c.Running(0) || c.Running(5) {
		t.Error("Running of a node that never started")
	}
	if err := c.CreateUsers([]string{"a"}, "pw"); err == nil {
		t.Error("CreateUsers with no node running: no error")
	}
	api.Close()
	if _, err := c.Members(ctx, 0); err == nil {
		t.Error("Members of a node whose API is gone: no error")
	}
}
