//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pubpresence/pubpresence/internal/testserver"
)

// chromiumPath is where Debian's chromium package puts the browser
// (scripts/install-servers.sh chromium).
const chromiumPath = "/usr/bin/chromium"

// screenshotEnv names the variable that makes TestIntegrationPage write
// docs/page.png (so that CI does not rewrite it).
const screenshotEnv = "PUBPRESENCE_SCREENSHOT"

// TestIntegrationPage drives the page at / (web/page) in headless Chromium
// against the service and a real server, as a person would: a wrong token
// brings the form back with an error; with the right one the page shows
// the service online, users logging in, changing status and text and
// logging out, without a reload; a filter; the service's restart (the page
// reconnects by itself and shows the right users again); forgetting the
// token. Every wait is a bounded poll of the DOM. With PUBPRESENCE_SCREENSHOT=1
// the Prosody run saves docs/page.png.
func TestIntegrationPage(t *testing.T) {
	browser := findChromium(t)
	eachServer(t, func(t *testing.T, start startFunc) {
		began := time.Now()
		srv := start(t)
		createUsers(t, srv, "alice", "bob", "carol", "dave")
		g := startGate(t, srv.ComponentAddr)
		svc := startService(t, srv, withAddress(g.Addr()))
		waitUntil(t, "readyz", func() bool { return svc.Ready() == http.StatusOK })
		p := openPage(t, browser)
		p.do(chromedp.EmulateViewport(1100, 700))
		p.do(chromedp.Navigate("http://" + svc.http + "/"))

		// The SSE parser on its own: CRLF, CR and LF line ends, a BOM,
		// comments, retry, ids kept across events, split at every byte.
		if got := p.eval(sseParserCheck); got != "ok" {
			t.Errorf("the page's SSE parser: %s", got)
		}

		// A wrong token: refused, the form comes back with the error and
		// the token is not kept.
		p.waitFor("the token form", `visible('#token-form') && document.activeElement === $('#token')`)
		p.do(chromedp.SendKeys("#token", "not-the-token-0123456789\n"))
		p.waitFor("the refused token's error", `$('#stream').dataset.state === 'unauthorized' && visible('#token-form') &&
			visible('#token-error') && $('#token-error').textContent.includes('401') && !visible('#view')`)
		if got := p.eval(`String(sessionStorage.getItem('pubpresence.token'))`); got != "null" {
			t.Errorf("a refused token is kept in sessionStorage: %q", got)
		}

		// The right token: connected, online, nobody yet. The token is in
		// sessionStorage and not in the URL.
		p.do(chromedp.SendKeys("#token", svc.token+"\n"))
		p.waitFor("online and connected", `$('#service').dataset.service === 'online' && $('#stream').dataset.state === 'connected' &&
			!visible('#token-form') && visible('#view') && $('#counts').dataset.users === '0' && visible('#empty')`)
		if got := p.eval(`sessionStorage.getItem('pubpresence.token')`); got != svc.token {
			t.Errorf("sessionStorage holds %q, want the token", got)
		}
		if loc := p.eval(`location.href`); strings.Contains(loc, svc.token) || loc != "http://"+svc.http+"/" {
			t.Errorf("the page's URL is %q", loc)
		}
		// A mark on the window: were the page reloaded, it would be gone.
		p.eval(`window.sameLoad = 'yes'`)

		// Users log in: they appear with their status, ip, since.
		alice := online(t, srv, "alice", "laptop")
		p.waitFor("alice online", rowIs("alice@localhost/laptop", "online")+` && user('alice@localhost', 'online')`)
		p.check("alice's row", `cell('alice@localhost/laptop', '.ip') === 'IP 127.0.0.1' &&
			cell('alice@localhost/laptop', '.resource') === 'laptop' && cell('alice@localhost/laptop', '.prio') === 'priority 0' &&
			/^since (just now|\d+ s ago)$/.test(cell('alice@localhost/laptop', '.since')) &&
			/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/.test(row('alice@localhost/laptop').querySelector('.since time').title)`)
		bob := online(t, srv, "bob", "desk")
		p.waitFor("bob online", rowIs("bob@localhost/desk", "online")+` && $('#counts').dataset.users === '2' && $('#counts').dataset.conns === '2'`)

		// Changes apply in place: alice's element is the same one after
		// bob's change (one connection's change does not rebuild the list).
		p.eval(`$('[data-user="alice@localhost"]').dataset.mark = 'kept', 'ok'`)
		if err := bob.Presence("dnd", "In a meeting", 0); err != nil {
			t.Fatal(err)
		}
		p.waitFor("bob dnd", rowIs("bob@localhost/desk", "dnd")+` && user('bob@localhost', 'dnd') && cell('bob@localhost/desk', '.text') === 'In a meeting'`)
		p.check("alice's element kept across bob's change", `$('[data-user="alice@localhost"]').dataset.mark === 'kept'`)
		if err := alice.Presence("away", "At lunch", 5); err != nil {
			t.Fatal(err)
		}
		p.waitFor("alice away", rowIs("alice@localhost/laptop", "away")+` && user('alice@localhost', 'away') &&
			cell('alice@localhost/laptop', '.text') === 'At lunch' && cell('alice@localhost/laptop', '.prio') === 'priority 5'`)
		// A second connection: the user's status is its most available one.
		phone := dial(t, srv, "alice", "phone")
		if err := phone.Presence("chat", "", 0); err != nil {
			t.Fatal(err)
		}
		p.waitFor("alice's phone", rowIs("alice@localhost/phone", "chat")+` && user('alice@localhost', 'chat') &&
			$('[data-user="alice@localhost"]').dataset.conns === '2' && $('#counts').dataset.conns === '3'`)
		// An idle connection: idle since, as a time.
		carol := online(t, srv, "carol", "tablet")
		idle := time.Now().UTC().Add(-25 * time.Minute).Format(time.RFC3339)
		if err := carol.Send("<presence><show>xa</show><status>Back on Monday</status><idle xmlns='urn:xmpp:idle:1' since='" + idle + "'/></presence>"); err != nil {
			t.Fatal(err)
		}
		p.waitFor("carol xa, idle", rowIs("carol@localhost/tablet", "xa")+` && cell('carol@localhost/tablet', '.idle') === 'idle since 25 min ago'`)
		online(t, srv, "dave", "home")
		p.waitFor("dave online", rowIs("dave@localhost/home", "online"))
		p.check("users in order", `[...document.querySelectorAll('#users [data-user]')].map(e => e.dataset.user).join() === 'alice@localhost,bob@localhost,carol@localhost,dave@localhost'`)

		// The filter matches text, status and ip; it hides, the counts say so.
		p.filter("lunch")
		p.waitFor("the filter 'lunch'", `visible('[data-user="alice@localhost"]') && visible('[data-jid="alice@localhost/laptop"]') &&
			!visible('[data-jid="alice@localhost/phone"]') && !visible('[data-user="bob@localhost"]') && !visible('[data-user="carol@localhost"]') &&
			$('#counts').textContent === '1 of 4 users · 1 of 5 connections'`)
		p.filter("dnd")
		p.waitFor("the filter 'dnd'", `!visible('[data-user="alice@localhost"]') && visible('[data-user="bob@localhost"]')`)
		p.filter("127.0.0")
		p.waitFor("the filter '127.0.0'", `visibleCount('[data-jid]') === 5`)
		p.filter("")
		p.waitFor("no filter", `visibleCount('[data-jid]') === 5 && $('#counts').textContent === '4 users · 5 connections'`)
		p.check("no horizontal scrolling at 1100 px", `document.documentElement.scrollWidth <= innerWidth`)

		if os.Getenv(screenshotEnv) == "1" && strings.HasSuffix(t.Name(), "/prosody") {
			p.screenshot("../docs/page.png")
		}

		// Logging out: a connection goes, then a user.
		_ = phone.Close()
		p.waitFor("alice's phone gone", `!$('[data-jid="alice@localhost/phone"]') && user('alice@localhost', 'away')`)
		_ = bob.Close()
		p.waitFor("bob gone", `!$('[data-user="bob@localhost"]') && $('#counts').dataset.users === '3'`)

		// The service restarts: the stream drops, the page reconnects by
		// itself and shows init (a partial list), then online and the right
		// users again. The gate holds the restarted service's connection to
		// the server until the page has shown init.
		p.eval(`(window.seen = [], new MutationObserver(() => {
			const s = $('#stream').dataset.state + '/' + $('#service').dataset.service;
			if (seen[seen.length - 1] !== s) seen.push(s);
		}).observe(document.body, {subtree: true, attributes: true, attributeFilter: ['data-state', 'data-service']}), 'ok')`)
		restart := time.Now()
		svc.Stop()
		p.waitFor("reconnecting", `$('#stream').dataset.state === 'reconnecting' || $('#stream').dataset.state === 'connecting'`)
		g.hold()
		svc.Start()
		p.waitFor("init", `$('#service').dataset.service === 'init' && $('#stream').dataset.state === 'connected' && visible('#partial')`)
		g.release()
		p.waitFor("online again", `$('#service').dataset.service === 'online' && $('#stream').dataset.state === 'connected' &&
			$('#counts').dataset.users === '3' && `+rowIs("alice@localhost/laptop", "away")+` && cell('alice@localhost/laptop', '.text') === 'At lunch' &&
			`+rowIs("carol@localhost/tablet", "xa")+` && !$('[data-user="bob@localhost"]')`)
		seen := p.eval(`seen.join(' ')`)
		t.Logf("service restart: the page was online and connected again %v after the stop; states: %s", time.Since(restart).Round(time.Millisecond), seen)
		// The stopping service tells init before the stream ends (the
		// page may see it or not, depending on when the stop comes), then
		// the page reconnects, sees init, then online.
		if !(strings.HasPrefix(seen, "reconnecting/online ") || strings.HasPrefix(seen, "connected/init reconnecting/init ")) ||
			!strings.HasSuffix(seen, " connected/init connected/online") {
			t.Errorf("the page's states (stream/service) after the stop: %s; want [init,] reconnecting, …, init, online", seen)
		}
		// And it keeps following: a change after the restart.
		if err := alice.Presence("", "Back", 0); err != nil {
			t.Fatal(err)
		}
		p.waitFor("alice online after the restart", rowIs("alice@localhost/laptop", "online")+` && cell('alice@localhost/laptop', '.text') === 'Back'`)
		p.check("the page was not reloaded", `window.sameLoad === 'yes'`)

		// A phone's width: one column, no horizontal scrolling.
		p.do(chromedp.EmulateViewport(390, 800, chromedp.EmulateMobile))
		p.waitFor("no horizontal scrolling at 390 px", `innerWidth === 390 && document.documentElement.scrollWidth <= 390`)

		// Forgetting the token: the form again, nothing kept.
		p.do(chromedp.Click("#forget"))
		p.waitFor("the form after forgetting", `visible('#token-form') && !visible('#view') && $('#stream').dataset.state === 'idle' &&
			sessionStorage.getItem('pubpresence.token') === null && !$('[data-user]')`)

		p.checkConsole()
		t.Logf("PAGE | %s | whole story in %v", t.Name(), time.Since(began).Round(time.Millisecond))
	})
}

// findChromium returns the browser's path; it skips the test when there
// is none, or fails it when PUBPRESENCE_REQUIRE_SERVERS=1.
func findChromium(t *testing.T) string {
	t.Helper()
	path := chromiumPath
	if _, err := os.Stat(path); err != nil {
		if p, lerr := exec.LookPath("chromium"); lerr == nil {
			return p
		}
		msg := fmt.Sprintf("chromium is not installed at %s (run scripts/install-servers.sh chromium)", path)
		if os.Getenv(testserver.RequireServersEnv) == "1" {
			t.Fatalf("%s and %s=1", msg, testserver.RequireServersEnv)
		}
		t.Skipf("%s; set %s=1 to fail instead of skipping", msg, testserver.RequireServersEnv)
	}
	return path
}

// gate passes TCP connections on to target, or holds new ones (accepted,
// not passed on) between hold and release.
type gate struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	open   chan struct{} // closed while connections pass
}

func startGate(t *testing.T, target string) *gate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{ln: ln, target: target, open: make(chan struct{})}
	close(g.open)
	var wg sync.WaitGroup
	done := make(chan struct{})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				g.pass(c, done)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		close(done)
		wg.Wait()
	})
	return g
}

func (g *gate) Addr() string { return g.ln.Addr().String() }

func (g *gate) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = make(chan struct{})
}

func (g *gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	close(g.open)
}

// pass waits for the gate to open, then copies both ways until either
// side closes or the test ends.
func (g *gate) pass(c net.Conn, done <-chan struct{}) {
	defer c.Close()
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	select {
	case <-open:
	case <-done:
		return
	}
	s, err := net.DialTimeout("tcp", g.target, 5*time.Second)
	if err != nil {
		return
	}
	defer s.Close()
	ended := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(s, c); ended <- struct{}{} }()
	go func() { _, _ = io.Copy(c, s); ended <- struct{}{} }()
	select {
	case <-ended:
	case <-done:
	}
}

// page is one headless Chromium tab.
type page struct {
	t   *testing.T
	ctx context.Context

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

// openPage starts a headless Chromium for the test, ended at its end.
func openPage(t *testing.T, browser string) *page {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.ExecPath(browser))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	p := &page{t: t, ctx: ctx}
	// The first Run starts the browser, on a context with no timeout: the
	// browser lives as long as it.
	if err := chromedp.Do(ctx); err != nil {
		cancelTab()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	msgs := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range msgs {
			if err != nil {
				return
			}
			p.mu.Lock()
			p.console = append(p.console, m)
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the page's console:\n%s", p.consoleText())
		}
		cancelTab()
		cancelAlloc()
		<-done
	})
	return p
}

// do runs steps, each bounded.
func (p *page) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, wait)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("page: %v\n%s", err, p.describe())
	}
}

// filter types s into the filter box over what it holds.
func (p *page) filter(s string) {
	p.t.Helper()
	p.eval(`$('#filter').select(), 'ok'`)
	if s == "" {
		s = "\b" // Backspace: deletes the selection
	}
	p.do(chromedp.SendKeys("#filter", s))
}

// pageHelpers are the small functions the expressions below use.
const pageHelpers = `const $ = (s) => document.querySelector(s);
const visible = (s) => { const e = typeof s === 'string' ? $(s) : s; return !!e && e.checkVisibility(); };
const visibleCount = (s) => [...document.querySelectorAll(s)].filter((e) => e.checkVisibility()).length;
const row = (jid) => $('[data-jid="' + CSS.escape(jid) + '"]');
const cell = (jid, c) => { const r = row(jid); return r ? r.querySelector(c).textContent : null; };
const user = (bare, status) => { const e = $('[data-user="' + CSS.escape(bare) + '"]'); return !!e && e.dataset.status === status; };
`

// eval returns the value of a JavaScript expression as a string.
func (p *page) eval(expr string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, wait)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string]("(() => {"+pageHelpers+"return String("+expr+");})()"))
	if err != nil {
		p.t.Fatalf("page: evaluate %s: %v", expr, err)
	}
	return v
}

// check fails the test unless cond holds now.
func (p *page) check(what, cond string) {
	p.t.Helper()
	if p.eval("!!("+cond+")") != "true" {
		p.t.Errorf("page: not so: %s (%s)\n%s", what, cond, p.describe())
	}
}

// waitFor polls the DOM until cond holds, at most wait.
func (p *page) waitFor(what, cond string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, wait+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void]("(() => {"+pageHelpers+"return !!("+cond+");})()",
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(wait)))
	if err != nil {
		p.t.Fatalf("page: waiting for %s: %v\n%s", what, err, p.describe())
	}
}

// describe says what the page shows, for failures.
func (p *page) describe() string {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
		const q = (s) => document.querySelector(s);
		const lines = ['service=' + q('#service').dataset.service + ' stream=' + q('#stream').dataset.state + ' "' +
			q('#stream').textContent + q('#countdown').textContent + q('#stream-detail').textContent + '" form=' + !q('#token-form').hidden +
			' filter="' + q('#filter').value + '" error="' + q('#token-error').textContent + '" counts="' + q('#counts').textContent + '"'];
		for (const u of document.querySelectorAll('[data-user]')) {
			lines.push('  ' + u.dataset.user + ' ' + u.dataset.status + (u.hidden ? ' (hidden)' : ''));
			for (const c of u.querySelectorAll('[data-jid]')) {
				lines.push('    ' + c.dataset.jid + ' ' + c.dataset.status + ' | ' + [...c.children].map((e) => e.textContent).join(' | '));
			}
		}
		return lines.join('\n');
	})()`))
	if err != nil {
		return "(the page cannot be read: " + err.Error() + ")"
	}
	return "the page shows: " + s
}

// screenshot saves the viewport as a PNG.
func (p *page) screenshot(path string) {
	p.t.Helper()
	p.eval(`document.activeElement.blur(), 'ok'`)
	ctx, cancel := context.WithTimeout(p.ctx, wait)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot: %s (%d bytes)", path, len(png))
}

func (p *page) consoleText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, m := range p.console {
		fmt.Fprintf(&b, "  %s\n", m.String())
	}
	return b.String()
}

// checkConsole fails the test for an uncaught exception in the page or a
// resource the CSP refused (an inline script or style, say). Failed
// requests are expected: the refused token, the restart.
func (p *page) checkConsole() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.console {
		if m.IsException() || strings.Contains(m.Text, "Content Security Policy") || strings.Contains(m.Text, "Refused to") {
			p.t.Errorf("the page's console: %s", m.String())
		}
	}
}

// rowIs is a JavaScript condition: the connection jid is shown with status.
func rowIs(jid, status string) string {
	j, _ := json.Marshal(jid)
	s, _ := json.Marshal(status)
	return fmt.Sprintf("(row(%s) !== null && row(%s).dataset.status === %s)", j, j, s)
}

// sseParserCheck feeds the page's SSE parser one stream whole and split
// at every pair of positions, and says "ok" when every way gives the same
// events, and those are the right ones.
const sseParserCheck = `(() => {
	const text = '\ufeffretry: 2000\r\n\r\n: keepalive\r\nid: 5\r\nevent: snapshot\r\ndata: {"a":1}\r\n\r\n' +
		'event: service\ndata: {"service":"online"}\n\n' +
		'id: 6\revent: change\rdata:x\rdata:  y\r\r' +
		'id: 7\r\nevent: change\r\nunknown: field\r\ndata\r\n\r\nevent: nodata\n\n';
	const bytes = new TextEncoder().encode(text + 'data: é€😀\n\n');
	const run = (parts) => {
		const out = [];
		const p = new window.pubpresence.SSEParser({
			onEvent: (e) => out.push(e.type + '#' + e.lastEventId + '#' + e.data),
			onRetry: (ms) => out.push('retry ' + ms),
		});
		for (const part of parts) p.push(part);
		return out.join('|');
	};
	const want = 'retry 2000|snapshot#5#{"a":1}|service#5#{"service":"online"}|change#6#x\n y|change#7#|message#7#é€😀';
	const whole = run([bytes]);
	if (whole !== want) return 'whole: got ' + JSON.stringify(whole) + ', want ' + JSON.stringify(want);
	for (let i = 0; i <= bytes.length; i++) {
		for (let j = i; j <= bytes.length; j++) {
			const got = run([bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)]);
			if (got !== want) return 'split at ' + i + ', ' + j + ': got ' + JSON.stringify(got);
		}
	}
	return 'ok';
})()`
