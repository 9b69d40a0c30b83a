//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/internal/testserver"
	"github.com/pubpresence/pubpresence/presence"
)

// watchLine is one line of `pubpresence watch --format json`.
type watchLine struct {
	Event       string `json:"event"`
	Time        string `json:"time"`
	Status      string `json:"status"`
	JID         string `json:"jid"`
	Show        string `json:"show"`
	Priority    int    `json:"priority"`
	Text        string `json:"text"`
	IP          string `json:"ip"`
	Since       string `json:"since"`
	Connections int    `json:"connections"`
	raw         string
}

func (l watchLine) String() string { return l.raw }

// safeBuffer is a bytes.Buffer for a process's stderr, read while it runs.
type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *safeBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *safeBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// watchProc is a running `pubpresence watch --format json`.
type watchProc struct {
	cmd    *exec.Cmd
	lines  chan watchLine // closed at the end of stdout
	stderr *safeBuffer
	done   chan struct{}   // closed when the process has exited
	err    error           // its exit error, valid after done
	seen   map[string]bool // JIDs of the lines read by expect
}

// watchArgs are the arguments to watch srv as jid with the password in a
// file.
func watchArgs(t *testing.T, srv *testserver.Server, local, pw string, extra ...string) []string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(file, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return append([]string{"watch", "--server", srv.C2SAddr, "--jid", local + "@" + srv.Domain,
		"--password-file", file, "--timeout", "10s"}, extra...)
}

// plainArgs are watchArgs for a server without TLS.
func plainArgs(t *testing.T, srv *testserver.Server, local, pw string, extra ...string) []string {
	t.Helper()
	return watchArgs(t, srv, local, pw, append([]string{"--plain"}, extra...)...)
}

// startWatch runs the binary with args; it is killed at the end of the test.
func startWatch(t *testing.T, env []string, args ...string) *watchProc {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &watchProc{cmd: cmd, lines: make(chan watchLine, 1024), stderr: &safeBuffer{}, done: make(chan struct{}),
		seen: map[string]bool{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		defer close(p.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			l := watchLine{raw: sc.Text()}
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				l.Event = "not JSON: " + err.Error()
			}
			p.lines <- l
		}
	}()
	go func() {
		<-read // Wait closes the pipe: read it all first
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("watch %s stderr:\n%s", strings.Join(args, " "), p.stderr.String())
		}
	})
	return p
}

// exit waits for the process to end and returns its exit status.
func (p *watchProc) exit(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(wait):
		t.Fatalf("watch still running after %s; stderr:\n%s", wait, p.stderr.String())
	}
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &ee) && ee.Exited():
		return ee.ExitCode()
	}
	t.Fatalf("watch: %v", p.err)
	return -1
}

// expect reads the next line, which must satisfy want. An "available"
// line for a connection printed before (a refinement, such as the IP
// learned later) may come first: it is skipped.
func (p *watchProc) expect(t *testing.T, what string, want func(watchLine) bool) watchLine {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("watch ended waiting for %s; stderr:\n%s", what, p.stderr.String())
			}
			refinement := l.Event == "available" && p.seen[l.JID]
			if l.JID != "" {
				p.seen[l.JID] = true
			}
			if want(l) {
				return l
			}
			if !refinement {
				t.Fatalf("waiting for %s, got %s", what, l)
			}
		case <-timeout:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func isLine(event, jid string, show presence.Show) func(watchLine) bool {
	return func(l watchLine) bool { return l.Event == event && l.JID == jid && l.Show == string(show) }
}

func isOnline(n int) func(watchLine) bool {
	return func(l watchLine) bool { return l.Event == "online" && l.Connections == n }
}

// TestIntegrationWatchCommand runs `pubpresence watch` as an operator would:
// the state, then the changes in order, a restart of the service, --once,
// a wrong password and a JID that is not a reader.
func TestIntegrationWatchCommand(t *testing.T) {
	eachServer(t, func(t *testing.T, start startFunc) {
		srv := start(t)
		createUsers(t, srv, "wcalice", "wcbob", "wceve")
		svc := startService(t, srv)
		waitUntil(t, "readyz", func() bool { return svc.Ready() == http.StatusOK })
		alice := "wcalice@" + srv.Domain + "/laptop"
		bob := "wcbob@" + srv.Domain + "/desk"

		// No connection yet: the state is empty, which the Follower's view
		// already was, and --once still says so and exits.
		empty := startWatch(t, nil, plainArgs(t, srv, reader, password, "--format", "json", "--once")...)
		empty.expect(t, "an empty state", isOnline(0))
		if code := empty.exit(t); code != 0 {
			t.Errorf("--once on an empty state: exit %d, want 0", code)
		}

		laptop := online(t, srv, "wcalice", "laptop")
		if err := laptop.Presence("", "hello", 1); err != nil {
			t.Fatal(err)
		}
		waitView(t, watcher(t, srv), map[string]conn{alice: {show: presence.Online, text: "hello", prio: 1, ip: "127.0.0.1"}})

		// --once prints the state and exits 0.
		once := startWatch(t, nil, plainArgs(t, srv, reader, password, "--format", "json", "--once")...)
		l := once.expect(t, "alice in the state", isLine("state", alice, presence.Online))
		if l.Text != "hello" || l.Priority != 1 || l.IP != "127.0.0.1" || l.Since == "" || l.Time == "" {
			t.Errorf("state line: %s", l)
		}
		once.expect(t, "online after the state", isOnline(1))
		if code := once.exit(t); code != 0 {
			t.Errorf("--once: exit %d, want 0; stderr:\n%s", code, once.stderr.String())
		}
		if l, ok := <-once.lines; ok {
			t.Errorf("--once printed more: %s", l)
		}

		// The table, with the password from the environment.
		args := []string{"watch", "--server", srv.C2SAddr, "--jid", reader + "@" + srv.Domain, "--once", "--plain"}
		table := startWatch(t, []string{"PUBPRESENCE_WATCH_PASSWORD=" + password}, args...)
		var out []string
		for l := range table.lines {
			out = append(out, l.raw)
		}
		if code := table.exit(t); code != 0 || len(out) != 3 || !strings.HasSuffix(out[0], " online: 1 connection") ||
			!strings.HasPrefix(out[1], "JID ") || !strings.HasPrefix(strings.Join(strings.Fields(out[2]), " "), alice+" online 1 hello 127.0.0.1 ") {
			t.Errorf("table --once: exit %d, output:\n%s", code, strings.Join(out, "\n"))
		}

		// Following: the state, then every change in order.
		w := startWatch(t, nil, plainArgs(t, srv, reader, password, "--format", "json", "--resource", "cmd")...)
		w.expect(t, "alice in the state", isLine("state", alice, presence.Online))
		w.expect(t, "online after the state", isOnline(1))

		desk := online(t, srv, "wcbob", "desk")
		w.expect(t, "bob available", isLine("available", bob, presence.Online))
		if err := laptop.Presence("away", "At lunch", 3); err != nil {
			t.Fatal(err)
		}
		l = w.expect(t, "alice away", isLine("available", alice, presence.Away))
		if l.Text != "At lunch" || l.Priority != 3 {
			t.Errorf("alice away: %s", l)
		}
		_ = desk.Close()
		w.expect(t, "bob offline", isLine("offline", bob, presence.Offline))

		// A restart of the service: init, then the state again.
		svc.Stop()
		w.expect(t, "init on stop", func(l watchLine) bool { return l.Event == "status" && l.Status == "init" })
		svc.Start()
		l = w.expect(t, "alice in the state after the restart", isLine("state", alice, presence.Away))
		if l.Text != "At lunch" || l.Priority != 3 {
			t.Errorf("alice after the restart: %s", l)
		}
		w.expect(t, "online after the restart", isOnline(1))
		_ = laptop.Close()
		w.expect(t, "alice offline", isLine("offline", alice, presence.Offline))

		// SIGINT: a clean exit.
		_ = w.cmd.Process.Signal(syscall.SIGINT)
		if code := w.exit(t); code != 0 {
			t.Errorf("after SIGINT: exit %d, want 0; stderr:\n%s", code, w.stderr.String())
		}
		if l, ok := <-w.lines; ok {
			t.Errorf("unexpected line at the end: %s", l)
		}

		// A wrong password: exit 1 with one clear line.
		bad := startWatch(t, nil, plainArgs(t, srv, reader, "Wr0ngPw", "--format", "json")...)
		if code := bad.exit(t); code != 1 {
			t.Errorf("wrong password: exit %d, want 1", code)
		}
		want := fmt.Sprintf("pubpresence watch: login as %s@%s: not-authorized", reader, srv.Domain)
		if msg := bad.stderr.String(); !strings.HasPrefix(msg, want) || strings.Count(msg, "\n") != 1 || strings.Contains(msg, "Wr0ngPw") {
			t.Errorf("wrong password: stderr %q, want one line starting with %q", msg, want)
		}

		// A user who is not a reader of the whitelist nodes.
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		eve := exec.CommandContext(ctx, binary, plainArgs(t, srv, "wceve", password, "--once")...)
		msg, err := eve.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(msg), "wceve@"+srv.Domain+" is not a reader") {
			t.Errorf("not a reader: %v, output:\n%s", err, msg)
		}
	})
}

// TestIntegrationWatchCommandTLS: against a server that requires STARTTLS,
// watch logs in with the server's CA, and says clearly what is wrong
// without it or with --plain.
func TestIntegrationWatchCommandTLS(t *testing.T) {
	eachServer(t, func(t *testing.T, start startFunc) {
		srv := start(t, testserver.WithTLS())
		createUsers(t, srv, "wtalice")
		svc := startService(t, srv)
		waitUntil(t, "readyz", func() bool { return svc.Ready() == http.StatusOK })

		w := startWatch(t, nil, watchArgs(t, srv, reader, password, "--format", "json", "--once", "--ca", srv.CAFile)...)
		w.expect(t, "online over TLS", isOnline(0))
		if code := w.exit(t); code != 0 {
			t.Errorf("--once over TLS: exit %d; stderr:\n%s", code, w.stderr.String())
		}
		for _, tc := range []struct {
			name string
			args []string
			want string
		}{
			{"no CA", nil, "not signed by a known CA: give its CA with --ca"},
			{"plain", []string{"--plain"}, "the server requires STARTTLS: drop --plain"},
		} {
			p := startWatch(t, nil, watchArgs(t, srv, reader, password, append(tc.args, "--once")...)...)
			if code := p.exit(t); code != 1 || !strings.Contains(p.stderr.String(), tc.want) || strings.Count(p.stderr.String(), "\n") != 1 {
				t.Errorf("%s: exit %d, stderr %q; want 1 and one line with %q", tc.name, code, p.stderr.String(), tc.want)
			}
		}
	})
}

// httpWatchArgs are the arguments to watch svc's HTTP event stream with
// the service's own tokens file (a comment, then "NAME TOKEN").
func httpWatchArgs(svc *service, extra ...string) []string {
	return append([]string{"watch", "--http", "http://" + svc.http, "--token-file", svc.tokens}, extra...)
}

// sameAs is a JSON line without its time, to compare the output of two
// watches.
func sameAs(t *testing.T, l watchLine) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(l.raw), &m); err != nil {
		t.Fatalf("line %s: %v", l, err)
	}
	delete(m, "time")
	b, _ := json.Marshal(m)
	return string(b)
}

// until reads lines until one satisfies want, and returns them all.
func (p *watchProc) until(t *testing.T, what string, want func(watchLine) bool) []watchLine {
	t.Helper()
	timeout := time.After(wait)
	var got []watchLine
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("watch ended waiting for %s after %v; stderr:\n%s", what, got, p.stderr.String())
			}
			got = append(got, l)
			if want(l) {
				return got
			}
		case <-timeout:
			t.Fatalf("timed out waiting for %s after %v", what, got)
		}
	}
}

// TestIntegrationWatchCommandHTTP runs `pubpresence watch --http` next to
// the XMPP watch: the same lines for a user logging in, changing and
// leaving; --once in JSON and in a table; a restart of the service, which
// the HTTP watch rides out by reconnecting; a refused token.
func TestIntegrationWatchCommandHTTP(t *testing.T) {
	eachServer(t, func(t *testing.T, start startFunc) {
		srv := start(t)
		createUsers(t, srv, "whalice", "whbob")
		svc := startService(t, srv)
		waitUntil(t, "readyz", func() bool { return svc.Ready() == http.StatusOK })
		alice := "whalice@" + srv.Domain + "/laptop"
		bob := "whbob@" + srv.Domain + "/desk"

		// --once --format json on the empty state.
		empty := startWatch(t, nil, httpWatchArgs(svc, "--format", "json", "--once")...)
		empty.expect(t, "an empty state", isOnline(0))
		if code := empty.exit(t); code != 0 {
			t.Errorf("--once on an empty state: exit %d, want 0; stderr:\n%s", code, empty.stderr.String())
		}
		if msg := empty.stderr.String(); !strings.HasPrefix(msg, "pubpresence watch: following http://"+svc.http+"/api/v1/events") ||
			strings.Contains(msg, svc.token) {
			t.Errorf("stderr %q", msg)
		}

		// Both watches follow the same changes and print the same lines.
		xw := startWatch(t, nil, plainArgs(t, srv, reader, password, "--format", "json", "--resource", "cmdx")...)
		hw := startWatch(t, nil, httpWatchArgs(svc, "--format", "json")...)
		xw.expect(t, "XMPP: online", isOnline(0))
		hw.expect(t, "HTTP: online", isOnline(0))
		// Each step is seen before the next, so that the order is the
		// users' and not the server's.
		laptop := online(t, srv, "whalice", "laptop")
		if err := laptop.Presence("", "hello", 1); err != nil {
			t.Fatal(err)
		}
		xlines := xw.until(t, "XMPP: alice hello", func(l watchLine) bool { return l.JID == alice && l.Text == "hello" })
		desk := online(t, srv, "whbob", "desk")
		xlines = append(xlines, xw.until(t, "XMPP: bob available", isLine("available", bob, presence.Online))...)
		if err := laptop.Presence("away", "At lunch", 3); err != nil {
			t.Fatal(err)
		}
		xlines = append(xlines, xw.until(t, "XMPP: alice away", isLine("available", alice, presence.Away))...)
		_ = desk.Close()
		xlines = append(xlines, xw.until(t, "XMPP: bob offline", isLine("offline", bob, presence.Offline))...)
		_ = laptop.Close()
		xlines = append(xlines, xw.until(t, "XMPP: alice offline", isLine("offline", alice, presence.Offline))...)
		hlines := hw.until(t, "HTTP: alice offline", isLine("offline", alice, presence.Offline))
		var x, h []string
		for _, l := range xlines {
			x = append(x, sameAs(t, l))
		}
		for _, l := range hlines {
			h = append(h, sameAs(t, l))
		}
		if strings.Join(x, "\n") != strings.Join(h, "\n") {
			t.Errorf("XMPP watch printed:\n  %s\nHTTP watch printed:\n  %s", strings.Join(x, "\n  "), strings.Join(h, "\n  "))
		}
		_ = xw.cmd.Process.Signal(syscall.SIGINT)
		if code := xw.exit(t); code != 0 {
			t.Errorf("XMPP watch after SIGINT: exit %d", code)
		}

		// --once, in JSON and as a table, prints what the XMPP watch does.
		laptop = online(t, srv, "whalice", "laptop")
		if err := laptop.Presence("dnd", "busy", 2); err != nil {
			t.Fatal(err)
		}
		hw.until(t, "HTTP: alice dnd", func(l watchLine) bool { return l.JID == alice && l.Show == "dnd" && l.IP != "" })
		// The actual node, which the XMPP watch fetches, is published
		// after the live item and the feed: wait for it.
		check := dial(t, srv, reader, "check")
		waitUntil(t, "alice dnd in the actual node", func() bool {
			items := actualItems(t, check, srv)
			return len(items) == 1 && items[0].Show == presence.DND && items[0].IP != ""
		})
		for _, format := range []string{"json", "table"} {
			xo := startWatch(t, nil, plainArgs(t, srv, reader, password, "--format", format, "--once")...)
			ho := startWatch(t, nil, httpWatchArgs(svc, "--format", format, "--once")...)
			var xout, hout []string
			for l := range xo.lines {
				xout = append(xout, l.raw)
			}
			for l := range ho.lines {
				hout = append(hout, l.raw)
			}
			if xc, hc := xo.exit(t), ho.exit(t); xc != 0 || hc != 0 {
				t.Errorf("--once --format %s: exit %d (XMPP) and %d (HTTP); stderr:\n%s", format, xc, hc, ho.stderr.String())
			}
			// Without the clock: the time field, the HH:MM:SS of the table.
			clean := func(lines []string) string {
				var out []string
				for _, l := range lines {
					if format == "json" {
						out = append(out, sameAs(t, watchLine{raw: l}))
					} else if i := strings.Index(l, " online: "); i >= 0 {
						out = append(out, l[i:])
					} else {
						out = append(out, l)
					}
				}
				return strings.Join(out, "\n")
			}
			if clean(xout) != clean(hout) || len(xout) != 2+btoi(format == "table") {
				t.Errorf("--once --format %s:\nXMPP:\n%s\nHTTP:\n%s", format, strings.Join(xout, "\n"), strings.Join(hout, "\n"))
			}
		}

		// A restart of the service: the HTTP watch reconnects and prints
		// the state again.
		svc.Stop()
		down := hw.until(t, "stream down", func(l watchLine) bool { return l.Event == "reconnecting" })
		svc.Start()
		back := hw.until(t, "stream back", func(l watchLine) bool { return l.Event == "reconnected" })
		state := hw.until(t, "online after the restart", isOnline(1))
		var got []string
		for _, l := range append(append(down, back...), state...) {
			got = append(got, l.Event+" "+l.JID+" "+l.Show)
		}
		if n := len(state); n < 2 || state[n-2].Event != "state" || state[n-2].JID != alice || state[n-2].Show != "dnd" {
			t.Errorf("after the restart: %q", got)
		}
		t.Logf("the HTTP watch across the restart: %q", got)
		_ = laptop.Close()
		hw.until(t, "alice offline after the restart", isLine("offline", alice, presence.Offline))
		_ = hw.cmd.Process.Signal(syscall.SIGINT)
		if code := hw.exit(t); code != 0 {
			t.Errorf("HTTP watch after SIGINT: exit %d; stderr:\n%s", code, hw.stderr.String())
		}
		if strings.Contains(hw.stderr.String(), svc.token) {
			t.Error("the token is printed")
		}

		// A token the service does not know: exit 1, one line naming the
		// file, not the token.
		wrong := filepath.Join(t.TempDir(), "wrong.token")
		if err := os.WriteFile(wrong, []byte("nobody "+randomToken(t)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		bad := startWatch(t, nil, "watch", "--http", "http://"+svc.http, "--token-file", wrong)
		if code := bad.exit(t); code != 1 {
			t.Errorf("wrong token: exit %d, want 1", code)
		}
		if msg := bad.stderr.String(); !strings.Contains(msg, "refused the token of --token-file "+wrong+" (401") || strings.Count(msg, "\n") != 1 {
			t.Errorf("wrong token: stderr %q", msg)
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
