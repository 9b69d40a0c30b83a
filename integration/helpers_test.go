//go:build integration

// Package integration runs pubpresence end to end against real servers
// started by the tests themselves, on loopback.
package integration

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/internal/c2s"
	"github.com/pubpresence/pubpresence/internal/load"
	"github.com/pubpresence/pubpresence/internal/testserver"
	"github.com/pubpresence/pubpresence/nodes"
	"github.com/pubpresence/pubpresence/presence"
	"github.com/pubpresence/pubpresence/watch"
)

const (
	password = "pw"
	reader   = "monitor"
	// wait bounds how long a test waits for the system to reach a state.
	// It is a bound against hanging, not a speed assertion.
	wait = 30 * time.Second
)

var testNodes = watch.Nodes{Live: "presence/live", Actual: "presence/actual", Status: "presence/status"}

// binary is the pubpresence command built once for the whole run.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pubpresence-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "pubpresence")
	args := []string{"build", "-o", binary}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "../cmd/pubpresence")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build pubpresence:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// svcOptions are the settings a test may change in the service's config.
type svcOptions struct {
	reconcile   string
	grace       string
	initLimit   string
	accessModel string
	secret      string
	keepalive   string // keepalive_timeout
	// keepaliveEvery and requestTimeout are keepalive_interval (default
	// 2s) and request_timeout (default 10s).
	keepaliveEvery, requestTimeout string
	address                        string // xmpp.address; default the server's component port
	// addresses, when set, is xmpp.address as an array: one per node of
	// a cluster (docs/ejabberd-cluster.md); address is then not used.
	addresses []string
	noIP      bool   // nodes.publish_ip = false
	purge     bool   // sync.purge_stale
	logLevel  string // log.level; default debug
	// mode is tracking.mode: by default "privileged" on a server started
	// WithPrivilege (a missing grant is then an error, not a quiet
	// fallback), else "roster".
	mode    string
	apiURL  string   // ejabberd.api_url; default the server's API with privileged presence on ejabberd
	poll    string   // tracking.sessions_poll; default 2s
	exclude []string // tracking.exclude
	// The HTTP face: on unless noAPI, with one token (service.token).
	noAPI        bool
	maxStreams   int      // http.max_streams; default 1000
	resumeEvents int      // http.resume_events; default 10000
	cors         []string // http.cors_origins
}

// service is a pubpresence process under test.
type service struct {
	t       testing.TB
	srv     *testserver.Server
	dir     string
	config  string
	http    string
	logPath string
	// token is the HTTP API's bearer token, in tokens; "" when the API is
	// off.
	token  string
	tokens string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	last *exec.Cmd // the process that ended last
}

func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startService writes a config for srv and starts pubpresence.
func startService(t testing.TB, srv *testserver.Server, opts ...func(*svcOptions)) *service {
	t.Helper()
	o := svcOptions{reconcile: "0", grace: "500ms", initLimit: "10s", accessModel: "whitelist", secret: srv.Secret, keepalive: "2s", keepaliveEvery: "2s", requestTimeout: "10s",
		address: srv.ComponentAddr, logLevel: "debug", mode: "roster", poll: "2s", maxStreams: 1000, resumeEvents: 10000}
	if srv.Privileged() {
		o.mode = "privileged"
		o.apiURL = srv.APIURL
	}
	for _, f := range opts {
		f(&o)
	}
	s := &service{t: t, srv: srv, dir: t.TempDir(), http: freePort(t)}
	s.config = filepath.Join(s.dir, "pubpresence.toml")
	s.logPath = filepath.Join(s.dir, "pubpresence.log")
	if !o.noAPI {
		s.token = randomToken(t)
		s.tokens = filepath.Join(s.dir, "tokens")
		if err := os.WriteFile(s.tokens, []byte("# the integration tests' reader\ntests "+s.token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	address := strconv.Quote(o.address)
	if len(o.addresses) > 0 {
		address = "[" + quoteList(o.addresses) + "]"
	}
	cfg := fmt.Sprintf(`[xmpp]
address = %s
component = %q
secret = %q
domains = [%q]
pubsub = %q
dial_timeout = "5s"
keepalive_interval = %q
keepalive_timeout = %q
request_timeout = %q
reconnect_max = "1s"

[nodes]
access_model = %q
readers = ["%s@%s"]
publish_ip = %v

[sync]
reconcile_interval = %q
init_timeout = %q
probe_grace = %q
purge_stale = %v

[tracking]
mode = %q
sessions_poll = %q
exclude = [%s]

[ejabberd]
api_url = %q

[http]
listen = %q
tokens_file = %q
max_streams = %d
resume_events = %d
cors_origins = [%s]

[log]
level = %q
`, address, srv.Component, o.secret, srv.Domain, srv.Pubsub, o.keepaliveEvery, o.keepalive, o.requestTimeout,
		o.accessModel, reader, srv.Domain, !o.noIP, o.reconcile, o.initLimit, o.grace, o.purge,
		o.mode, o.poll, quoteList(o.exclude), o.apiURL, s.http, s.tokens, o.maxStreams, o.resumeEvents, quoteList(o.cors), o.logLevel)
	if err := os.WriteFile(s.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() {
		if !t.Failed() {
			s.Stop()
			if s.Logged("WARNING: DATA RACE") {
				t.Errorf("the race detector found a data race in pubpresence: %s", s.LogTail(60))
			}
			return
		}
		// Keep the log, with a goroutine dump, for the post-mortem.
		s.signal(syscall.SIGQUIT)
		kept := filepath.Join(os.TempDir(), "pubpresence-failed-"+strings.ReplaceAll(t.Name(), "/", "_")+"-"+filepath.Base(s.dir)+".log")
		if b, err := os.ReadFile(s.logPath); err == nil && os.WriteFile(kept, b, 0o644) == nil {
			t.Logf("pubpresence log with goroutine dump: %s", kept)
		}
		t.Logf("pubpresence log tail:\n%s", s.LogTail(40))
		t.Logf("server log tail:\n%s", srv.LogTail(30))
	})
	return s
}

// Start starts the process (again).
func (s *service) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.Command(binary, "run", "--config", s.config)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	f.Close()
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
}

func (s *service) signal(sig syscall.Signal) {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	s.mu.Lock()
	s.cmd, s.last = nil, cmd
	s.mu.Unlock()
}

// Exited reports how the last stopped process ended: its exit code, or -1
// with the signal that killed it.
func (s *service) Exited() (code int, killedBy syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.last.ProcessState
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return -1, ws.Signal()
	}
	return st.ExitCode(), 0
}

// Hup sends SIGHUP: the service reloads its configuration.
func (s *service) Hup() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		s.t.Fatal(err)
	}
}

// Rewrite replaces old by new in the configuration file, which must hold old.
func (s *service) Rewrite(old, new string) {
	s.t.Helper()
	b, err := os.ReadFile(s.config)
	if err != nil {
		s.t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		s.t.Fatalf("config has no %q:\n%s", old, b)
	}
	if err := os.WriteFile(s.config, []byte(strings.Replace(string(b), old, new, 1)), 0o600); err != nil {
		s.t.Fatal(err)
	}
}

// LogLines returns the service's log lines, decoded from JSON. A line that
// is not a JSON object fails the test, unless the race detector wrote it
// (the test fails for the race at its end).
func (s *service) LogLines() []map[string]any {
	s.t.Helper()
	b, _ := os.ReadFile(s.logPath)
	raced := strings.Contains(string(b), "WARNING: DATA RACE")
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if l == "" || raced && !strings.HasPrefix(l, "{") {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			s.t.Fatalf("log line is not JSON: %q", l)
		}
		lines = append(lines, m)
	}
	return lines
}

// Stop ends the process with SIGTERM and waits.
func (s *service) Stop() { s.signal(syscall.SIGTERM) }

// Kill ends the process with SIGKILL: nothing is cleaned up.
func (s *service) Kill() { s.signal(syscall.SIGKILL) }

// LogTail returns the last n lines of the service's log.
func (s *service) LogTail(n int) string {
	b, _ := os.ReadFile(s.logPath)
	if i := strings.Index(string(b), "SIGQUIT"); i >= 0 {
		b = b[:i] // the goroutine dump is kept in the file, not shown here
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Metric returns the value of one sample of /metrics, e.g.
// `pubpresence_malformed_total{reason="priority"}`; 0 when absent.
func (s *service) Metric(t testing.TB, sample string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + s.http + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, sample+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(line[len(sample):]), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", sample, err)
			}
			return v
		}
	}
	return 0
}

// Logged reports whether the service's log has a line containing s.
func (s *service) Logged(sub string) bool {
	b, _ := os.ReadFile(s.logPath)
	return strings.Contains(string(b), sub)
}

// Running reports whether the process is still running.
func (s *service) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Ready returns the status code of /readyz.
func (s *service) Ready() int {
	resp, err := http.Get("http://" + s.http + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitUntil polls cond until it holds or the bound passes.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dial logs a user in without presence.
func dial(t testing.TB, srv *testserver.Server, local, resource string) *c2s.Client {
	t.Helper()
	return dialAt(t, srv.C2SAddr, local+"@"+srv.Domain, resource)
}

// dialAt logs jid in at addr without presence.
func dialAt(t testing.TB, addr, jid, resource string) *c2s.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	cl, err := c2s.Dial(ctx, c2s.Config{Addr: addr, JID: jid, Password: password, Resource: resource})
	if err != nil {
		t.Fatalf("login %s/%s: %v", jid, resource, err)
	}
	t.Cleanup(func() { _ = cl.Abort() })
	return cl
}

// quoteList writes strings as the items of a TOML array.
func quoteList(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

// online logs a user in, subscribes it to the component (pre-approved, as
// a client would) unless the server grants privileged presence (then the
// user's roster stays empty), and sends available presence.
func online(t testing.TB, srv *testserver.Server, local, resource string) *c2s.Client {
	t.Helper()
	return onlineAt(t, srv, srv.C2SAddr, local, resource)
}

// onlineAt is online through the client port addr (of a cluster's node).
func onlineAt(t testing.TB, srv *testserver.Server, addr, local, resource string) *c2s.Client {
	t.Helper()
	cl := dialAt(t, addr, local+"@"+srv.Domain, resource)
	if srv.Privileged() {
		if err := cl.Presence("", "", 0); err != nil {
			t.Fatal(err)
		}
		return cl
	}
	if err := cl.ApproveAndSubscribe(srv.Component); err != nil {
		t.Fatal(err)
	}
	if err := cl.Presence("", "", 0); err != nil {
		t.Fatal(err)
	}
	return cl
}

// dialComponent connects to srv with the component's name, until the test
// ends.
func dialComponent(t testing.TB, srv *testserver.Server) *component.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	pub, err := component.Dial(ctx, component.Config{Address: srv.ComponentAddr, Name: srv.Component, Secret: srv.Secret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	return pub
}

// watcher logs the reader in and follows the nodes as docs/protocol.md says a client does.
func watcher(t testing.TB, srv *testserver.Server) *watch.Follower {
	t.Helper()
	cl := dial(t, srv, reader, "watch")
	f := watch.NewFollower(cl, srv.Pubsub, testNodes)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = f.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return f
}

// conn is what a test expects of one connection.
type conn struct {
	show presence.Show
	text string
	prio int
	ip   string
}

func describe(conns []presence.Conn) string {
	var b strings.Builder
	for _, c := range conns {
		fmt.Fprintf(&b, "  %s %s %q prio=%d ip=%s\n", c.JID, c.Show, c.Text, c.Priority, c.IP)
	}
	return b.String()
}

// matches reports whether conns are exactly want.
func matches(conns []presence.Conn, want map[string]conn) bool {
	if len(conns) != len(want) {
		return false
	}
	for _, c := range conns {
		w, ok := want[c.JID]
		if !ok || c.Show != w.show || c.Text != w.text || c.Priority != w.prio || (w.ip != "" && c.IP != w.ip) {
			return false
		}
	}
	return true
}

// waitView waits until the follower is online with exactly want.
func waitView(t testing.TB, f *watch.Follower, want map[string]conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	st, conns, err := f.WaitFor(ctx, func(st string, conns []presence.Conn) bool {
		return st == "online" && matches(conns, want)
	})
	if err != nil {
		t.Fatalf("watcher: status %q, connections:\n%swant %d: %v", st, describe(conns), len(want), want)
	}
}

// actualItems fetches presence/actual directly, as the reader.
func actualItems(t testing.TB, cl *c2s.Client, srv *testserver.Server) []presence.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	items, err := cl.Items(ctx, srv.Pubsub, testNodes.Actual)
	if err != nil {
		t.Fatalf("fetch %s: %v", testNodes.Actual, err)
	}
	conns := make([]presence.Conn, 0, len(items))
	for _, it := range items {
		c, err := nodes.ParseUser(it.Payload)
		if err != nil {
			t.Fatalf("item %s: %v", it.ID, err)
		}
		if c.JID != it.ID {
			t.Fatalf("item id %s holds %s", it.ID, c.JID)
		}
		conns = append(conns, c)
	}
	sort.Slice(conns, func(i, j int) bool { return conns[i].JID < conns[j].JID })
	return conns
}

// users names n users prefix000, prefix001, … as the load tool does.
func users(prefix string, n int) []string { return load.Names(prefix, n) }

func createUsers(t testing.TB, srv *testserver.Server, locals ...string) {
	t.Helper()
	if err := srv.CreateUsers(append([]string{reader}, locals...), password); err != nil {
		t.Fatalf("create users: %v", err)
	}
}

// randomToken returns a bearer token for the HTTP API.
func randomToken(t testing.TB) string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
