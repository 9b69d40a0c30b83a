package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/pubpresence/pubpresence/internal/c2s"
	"github.com/pubpresence/pubpresence/internal/xmpp"
	"github.com/pubpresence/pubpresence/presence"
	"github.com/pubpresence/pubpresence/watch"
)

// watchPasswordEnv names the environment variable that holds the password
// of the watching account when no flag gives it.
const watchPasswordEnv = "PUBPRESENCE_WATCH_PASSWORD"

const watchUsage = `usage: pubpresence watch --jid JID [flags]
       pubpresence watch --http URL --token-file FILE [flags]

Logs in to the Jabber server as JID, follows the pubpresence nodes as the
service's client protocol says (subscribe to the live and actual nodes, then
to the status node; on "online" fetch the actual node, then apply the live
events in order) and prints the current state, then every change, until
SIGINT or SIGTERM. JID must be a reader of the nodes (nodes.readers in the
service's config) unless they are open.

The password is read from --password-file (its first line), else from
$` + watchPasswordEnv + `, else from --password, which other users
of the machine can see in ps: prefer the first two.

--format table (the default) prints, when the service is online, a line
"HH:MM:SS online: N connections" and a table of them (JID, SHOW, PRIO,
STATUS TEXT, IP, SINCE, IDLE), then one line per change:
  HH:MM:SS  new      JID  SHOW  prio=P  text="…"  ip=IP[  idle=T]
  HH:MM:SS  changed  JID  SHOW  prio=P  text="…"  ip=IP[  idle=T]  (what changed)
  HH:MM:SS  offline  JID
and a line when the service status changes ("init": it is starting or
restarting; the last state is kept until it is online again, and then
printed anew). IDLE and idle= give the time since which the user is idle,
as the client told (XEP-0319); idle= is left out when it did not.

--format json prints one JSON object per line:
  {"event":"status","time":T,"status":"init"}
      the service status changed to something else than online
  {"event":"state","time":T,"jid":J,"show":S,"priority":P,"text":X,"ip":I,"since":T,"idle":T}
      one per connection of the state, after each (re)start of the service
  {"event":"online","time":T,"connections":N}
      after the state lines: the service is online, the state is complete
  {"event":"available","time":T,"jid":J,"show":S,"priority":P,"text":X,"ip":I,"since":T,"idle":T}
      a connection appeared or changed
  {"event":"offline","time":T,"jid":J,"show":"offline","priority":P,"text":X,"ip":I,"since":T,"idle":T}
      a connection went away
show is online, chat, away, xa or dnd (offline on offline lines); text is
the presence status text; time (when the line was printed), since (when
the service saw the change) and idle (since when the user is idle, as the
client told) are RFC 3339 UTC; since, idle and ip are "" when unknown.
State lines replace whatever was known before. Events that change nothing
(a repeated item) are not printed.

It requires STARTTLS and verifies the server's certificate for the domain
of JID (--ca, --tls-name); --plain logs in without TLS, for a test server on
loopback. It authenticates with the strongest SASL mechanism the server
offers: SCRAM-SHA-256, else SCRAM-SHA-1 (their -PLUS variants on TLS 1.3
when the server advertises tls-exporter channel binding), else PLAIN, which
is never sent without TLS: with --plain, a server that offers only PLAIN is
refused. A line on stderr says as whom and with which mechanism it logged
in. It does not reconnect: when the connection to the server ends it exits
with status 1.

With --http URL it follows the service's HTTP event stream instead of the
nodes (GET URL/api/v1/events; URL is http(s)://host[:port][/prefix], where
the service's [http] listen is reached) and prints the same. The bearer
token is read from --token-file, in the format of the service's
http.tokens_file: the first line that is not blank or a # comment, "NAME
TOKEN" or "TOKEN". The token is never printed. --ca verifies an https
service with a private CA; the flags of the XMPP login do not go with
--http. When the stream ends, or cannot be opened once it has been, it is
opened again after 0.5 s, doubling up to 10 s (a 503's Retry-After is
waited instead), asking for the changes missed (Last-Event-ID), and says so:
  HH:MM:SS stream down (why); retrying in 0.5s, keeping the last state
  HH:MM:SS stream back
(in JSON {"event":"reconnecting","time":T,"error":E,"retry_in":SECONDS}
and {"event":"reconnected","time":T}); a line is printed again only when
the reason changes. When the service sends a fresh snapshot rather than
the changes, the state is printed anew. A refused token (401), an API that
is off (404) or a service that cannot be reached at the start end watch
with status 1.

Exit status: 0 after SIGINT, SIGTERM or --once; 1 when the login (or the
token) or the following fails (one line on stderr says why); 2 for a usage error.

Flags:
`

// watchOptions are the settings of the watch command.
type watchOptions struct {
	server       string
	jid          string // bare JID, normalised
	password     string
	passwordFile string
	pubsub       string
	resource     string
	nodes        watch.Nodes
	format       string
	once         bool
	timeout      time.Duration
	plain        bool   // no STARTTLS
	caFile       string // PEM certificates to verify the server with, "" for the system's
	tlsName      string // name the server's certificate must have, "" for the domain of jid
	tls          *tls.Config
	httpURL      string // --http: the service's HTTP base URL, normalised; "" to follow the nodes
	tokenFile    string
	token        string // read from tokenFile; never printed
}

// newWatchFlags defines the flags of the watch command on a new flag set;
// parseWatch checks them once parsed.
func newWatchFlags(stderr io.Writer) (*flag.FlagSet, *watchOptions) {
	o := &watchOptions{nodes: watch.DefaultNodes()}
	fs := flag.NewFlagSet("pubpresence watch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, watchUsage); fs.PrintDefaults() }
	fs.StringVar(&o.server, "server", "127.0.0.1:5222", "the Jabber server's client (c2s) address, host:port")
	fs.StringVar(&o.jid, "jid", "", "bare JID to log in as, user@domain (required)")
	fs.StringVar(&o.passwordFile, "password-file", "", "read the password from this file (its first line)")
	fs.StringVar(&o.password, "password", "", "the password (visible in ps: prefer --password-file or $"+watchPasswordEnv+")")
	fs.StringVar(&o.pubsub, "pubsub", "", `pubsub service JID (default "pubsub." + the domain of --jid)`)
	fs.StringVar(&o.resource, "resource", "", `resource to bind (default "watch-" + random hex)`)
	fs.StringVar(&o.nodes.Live, "live", o.nodes.Live, "name of the live node")
	fs.StringVar(&o.nodes.Actual, "actual", o.nodes.Actual, "name of the actual node")
	fs.StringVar(&o.nodes.Status, "status", o.nodes.Status, "name of the status node")
	fs.StringVar(&o.format, "format", "table", "output format: table or json")
	fs.BoolVar(&o.once, "once", false, "print the state once the service is online, then exit")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "bound on connecting and logging in")
	fs.BoolVar(&o.plain, "plain", false, "log in over plain TCP, without STARTTLS (only for a test server on loopback; the default requires STARTTLS)")
	fs.StringVar(&o.caFile, "ca", "", "verify the server's certificate with the CA certificates in this PEM file (default: the system's)")
	fs.StringVar(&o.tlsName, "tls-name", "", "name the server's certificate must carry (default: the domain of --jid)")
	fs.StringVar(&o.httpURL, "http", "", "follow the service's HTTP event stream at this URL, http(s)://host[:port][/prefix], instead of the nodes (with --token-file)")
	fs.StringVar(&o.tokenFile, "token-file", "", `with --http: read the bearer token from this file ("NAME TOKEN" or "TOKEN", as in the service's http.tokens_file)`)
	return fs, o
}

// usageError is a mistake in the arguments (exit status 2). printed is set
// when the flag package has reported it already.
type usageError struct {
	msg     string
	printed bool
}

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{msg: fmt.Sprintf(format, a...)} }

// parseWatch parses and checks the watch command's arguments. getenv reads
// the environment (os.Getenv). It returns flag.ErrHelp for -h.
func parseWatch(args []string, stderr io.Writer, getenv func(string) string) (*watchOptions, error) {
	fs, o := newWatchFlags(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, &usageError{msg: err.Error(), printed: true}
	}
	if fs.NArg() > 0 {
		return nil, usagef("unexpected argument %q", fs.Arg(0))
	}
	if o.format != "table" && o.format != "json" {
		return nil, usagef("--format %q: want table or json", o.format)
	}
	if o.timeout <= 0 {
		return nil, usagef("--timeout %s: must be positive", o.timeout)
	}
	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["http"] {
		if err := parseWatchHTTP(o, set); err != nil {
			return nil, err
		}
		return o, nil
	}
	if o.tokenFile != "" {
		return nil, usagef("--token-file goes with --http")
	}
	if o.jid == "" {
		return nil, usagef("--jid is required")
	}
	j, err := xmpp.ParseJID(o.jid)
	switch {
	case err != nil:
		return nil, usagef("--jid: %v", err)
	case j.Local == "":
		return nil, usagef("--jid %q: need user@domain", o.jid)
	case j.Resource != "":
		return nil, usagef("--jid %q: give a bare JID and the resource with --resource", o.jid)
	}
	o.jid = j.Bare()
	if o.pubsub == "" {
		o.pubsub = "pubsub." + j.Domain
	} else if p, err := xmpp.ParseJID(o.pubsub); err != nil || p.Local != "" || p.Resource != "" {
		return nil, usagef("--pubsub %q: need a service JID such as pubsub.%s", o.pubsub, j.Domain)
	} else {
		o.pubsub = p.Domain
	}
	if _, _, err := net.SplitHostPort(o.server); err != nil {
		return nil, usagef("--server %q: need host:port", o.server)
	}
	if o.resource == "" {
		o.resource = randomResource()
	} else if r, err := xmpp.ParseJID(j.Bare() + "/" + o.resource); err != nil || r.Resource != o.resource {
		return nil, usagef("--resource %q: not a valid resource", o.resource)
	}
	if o.nodes.Live == "" || o.nodes.Actual == "" || o.nodes.Status == "" {
		return nil, usagef("--live, --actual and --status must not be empty")
	}
	if o.nodes.Live == o.nodes.Actual || o.nodes.Live == o.nodes.Status || o.nodes.Actual == o.nodes.Status {
		return nil, usagef("--live, --actual and --status must name three different nodes")
	}
	if o.plain && (o.caFile != "" || o.tlsName != "") {
		return nil, usagef("--plain turns TLS off: --ca and --tls-name do not go with it")
	}
	if !o.plain {
		o.tls = &tls.Config{ServerName: o.tlsName, MinVersion: tls.VersionTLS12}
		if err := o.loadCA(); err != nil {
			return nil, err
		}
	}
	switch {
	case o.passwordFile != "" && o.password != "":
		return nil, usagef("give the password with --password-file or --password, not both")
	case o.passwordFile != "":
		b, err := os.ReadFile(o.passwordFile)
		if err != nil {
			return nil, usagef("--password-file: %v", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		o.password = strings.TrimSuffix(line, "\r")
		if o.password == "" {
			return nil, usagef("--password-file %s: the first line is empty", o.passwordFile)
		}
	case o.password != "":
	default:
		o.password = getenv(watchPasswordEnv)
		if o.password == "" {
			return nil, usagef("no password: use --password-file, $%s or --password", watchPasswordEnv)
		}
	}
	return o, nil
}

// loadCA makes the certificates of --ca, if given, the roots of o.tls.
func (o *watchOptions) loadCA() error {
	if o.caFile == "" {
		return nil
	}
	pem, err := os.ReadFile(o.caFile)
	if err != nil {
		return usagef("--ca: %v", err)
	}
	o.tls.RootCAs = x509.NewCertPool()
	if !o.tls.RootCAs.AppendCertsFromPEM(pem) {
		return usagef("--ca %s: no PEM certificate in it", o.caFile)
	}
	return nil
}

// clientConfig is the c2s configuration of the watching session.
func (o *watchOptions) clientConfig() c2s.Config {
	return c2s.Config{Addr: o.server, JID: o.jid, Password: o.password, Resource: o.resource, Timeout: o.timeout, TLS: o.tls}
}

func randomResource() string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail
	return "watch-" + hex.EncodeToString(b[:])
}

// watchMain runs "pubpresence watch" with args (after "watch") and returns
// the exit status.
func watchMain(args []string, stdout, stderr io.Writer) int {
	o, err := parseWatch(args, stderr, os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		if ue := (*usageError)(nil); !errors.As(err, &ue) || !ue.printed {
			fmt.Fprintf(stderr, "pubpresence watch: %v (see pubpresence watch -h)\n", err)
		}
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); stop() }() // a second signal ends the process at once
	if err := runWatch(ctx, o, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "pubpresence watch: %v\n", err)
		return 1
	}
	return 0
}

// runWatch logs in and prints what the nodes say until ctx ends (nil), the
// state was printed with --once (nil) or something fails.
func runWatch(ctx context.Context, o *watchOptions, stdout, stderr io.Writer) error {
	if o.httpURL != "" {
		return runWatchHTTP(ctx, o, stdout, stderr)
	}
	cl, err := c2s.Dial(ctx, o.clientConfig())
	if err != nil {
		if ctx.Err() != nil {
			return nil // interrupted while logging in
		}
		return loginError(o, err)
	}
	defer cl.Close()
	fmt.Fprintf(stderr, "pubpresence watch: logged in as %s (SASL %s); following %s, %s and %s on %s\n",
		cl.JID(), cl.Mechanism(), o.nodes.Live, o.nodes.Actual, o.nodes.Status, o.pubsub)

	p := newWatchPrinter(stdout, o.watchFormat(), o.once)
	if err := follow(ctx, watch.NewFollower(cl, o.pubsub, o.nodes), p); err != nil {
		return followError(o, err)
	}
	if p.err != nil {
		return fmt.Errorf("write: %w", p.err)
	}
	return nil
}

// watchFormat returns the format of --format.
func (o *watchOptions) watchFormat() watchFormat {
	if o.format == "json" {
		return jsonFormat{}
	}
	return tableFormat{loc: time.Local}
}

// follower is what the command needs of watch.Follower and
// watch.HTTPFollower, whose output is printed by the same watchPrinter.
type follower interface {
	SetHooks(watch.Hooks)
	Run(ctx context.Context) error
}

// follow runs f, printing with p, until ctx ends, p is done (--once, or a
// write failed) or f fails. It returns f's error when f failed on its own,
// else nil (p.err says whether a write failed).
func follow(ctx context.Context, f follower, p *watchPrinter) error {
	f.SetHooks(watch.Hooks{OnStatus: p.status, OnSnapshot: p.snapshot, OnEvent: p.event})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- f.Run(ctx) }()
	// The printer's fields are written by Run's goroutine: read them only
	// once Run has returned.
	select {
	case <-ctx.Done():
		<-ran
	case <-p.done:
		cancel()
		<-ran
	case err := <-ran:
		if ctx.Err() == nil && p.err == nil {
			return err
		}
	}
	return nil
}

// loginError says in one line why the login failed.
func loginError(o *watchOptions, err error) error {
	var ae *c2s.AuthError
	var se *xmpp.StreamError
	var oe *net.OpError
	switch {
	case errors.As(err, &ae):
		msg := ae.Condition
		if ae.Text != "" {
			msg += ": " + ae.Text
		}
		return fmt.Errorf("login as %s: %s", o.jid, msg)
	case errors.As(err, &se):
		return fmt.Errorf("login as %s: %v", o.jid, se)
	case errors.Is(err, c2s.ErrTLSRequired):
		return fmt.Errorf("login as %s: the server requires STARTTLS: drop --plain", o.jid)
	case errors.Is(err, c2s.ErrPlainWithoutTLS):
		return fmt.Errorf("login as %s: the server offers no SCRAM, and SASL PLAIN would send the password in the clear: log in with STARTTLS (drop --plain)", o.jid)
	case errors.Is(err, c2s.ErrTLSNotOffered):
		return fmt.Errorf("login as %s: the server does not offer STARTTLS; --plain logs in without it (only on a trusted network)", o.jid)
	case errors.As(err, new(x509.UnknownAuthorityError)):
		return fmt.Errorf("login as %s: the server's certificate is not signed by a known CA: give its CA with --ca (%w)", o.jid, err)
	case errors.As(err, new(x509.HostnameError)):
		return fmt.Errorf("login as %s: the server's certificate is not for this name: see --tls-name (%w)", o.jid, err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("login as %s at %s: no answer within %s", o.jid, o.server, o.timeout)
	case errors.As(err, &oe) && oe.Op == "dial":
		return fmt.Errorf("connect to %s: %v", o.server, oe.Err)
	}
	return err
}

// followError says why following the nodes stopped.
func followError(o *watchOptions, err error) error {
	switch cond := xmpp.ConditionOf(err); cond {
	case xmpp.ErrForbidden, xmpp.ErrNotAuthorized, xmpp.ErrNotAllowed, xmpp.ErrRegistrationRequired, xmpp.ErrSubscriptionRequired:
		return fmt.Errorf("%s is not a reader of the nodes on %s (%s): add it to nodes.readers in the service's config (%w)",
			o.jid, o.pubsub, cond, err)
	}
	return fmt.Errorf("follow the nodes on %s: %w", o.pubsub, err)
}

// watchPrinter turns what a Follower sees into output. Its methods are the
// Follower's hooks, all called from its Run goroutine, in order.
type watchPrinter struct {
	out    io.Writer
	format watchFormat
	now    func() time.Time
	once   bool
	done   chan struct{} // closed when printing is over: the state printed with once, or a write failed

	err       error  // the first write error
	finished  bool   // done is closed
	current   string // the status last reported
	shown     bool   // the state of the current online period was printed
	everShown bool
	known     map[string]presence.Conn // what the output says is online
	down      string                   // why the stream is down, as last printed; "" while it is up (--http)
	buf       bytes.Buffer
}

func newWatchPrinter(out io.Writer, format watchFormat, once bool) *watchPrinter {
	return &watchPrinter{out: out, format: format, now: time.Now, once: once, done: make(chan struct{}), known: make(map[string]presence.Conn)}
}

// flush writes what the format put in buf; a failed write ends printing.
func (p *watchPrinter) flush() {
	if p.buf.Len() == 0 {
		return
	}
	if _, err := p.out.Write(p.buf.Bytes()); err != nil {
		p.err = err
		p.finish()
	}
	p.buf.Reset()
}

func (p *watchPrinter) finish() {
	if !p.finished {
		p.finished = true
		close(p.done)
	}
}

// status reports a status of the service (Follower.OnStatus). Online is
// printed with the snapshot that follows it.
func (p *watchPrinter) status(s string) {
	if p.finished || s == p.current {
		return
	}
	p.current, p.shown = s, false
	if s == watch.StatusOnline {
		return
	}
	p.format.status(&p.buf, p.now(), s, p.everShown)
	p.flush()
}

// snapshot prints the state loaded after online (Follower.OnSnapshot); a
// repeated online that finds the state as printed prints nothing.
func (p *watchPrinter) snapshot(conns []presence.Conn) {
	if p.finished || p.shown && sameConns(conns, p.known) {
		return
	}
	p.format.state(&p.buf, p.now(), conns)
	p.known = byJID(conns)
	p.shown, p.everShown = true, true
	p.flush()
	if p.once {
		p.finish()
	}
}

// event prints one change (Follower.OnEvent), unless it changes nothing
// the output has shown.
func (p *watchPrinter) event(ev watch.Event) {
	if p.finished {
		return
	}
	id := ev.Conn.JID
	if id == "" {
		id = ev.ID
	}
	old, had := p.known[id]
	if ev.Conn.Show == presence.Offline {
		if !had {
			return // nothing to take away
		}
		delete(p.known, id)
	} else {
		p.known[id] = ev.Conn
		if had && old.SameState(ev.Conn) {
			return // a repeated item
		}
	}
	var prev *presence.Conn
	if had {
		prev = &old
	}
	p.format.change(&p.buf, p.now(), ev.Conn, prev)
	p.flush()
}

// retry reports that the event stream ended or could not be opened, and
// is opened again after wait (HTTPFollower.OnRetry). A line is printed
// when the stream was up or the reason changed; the state printed is kept,
// and printed anew when a fresh snapshot comes.
func (p *watchPrinter) retry(reason string, wait time.Duration) {
	if p.finished {
		return
	}
	p.shown = false
	if reason == p.down {
		return
	}
	p.down = reason
	p.format.down(&p.buf, p.now(), reason, wait, p.everShown)
	p.flush()
}

// connected reports that a stream is open (HTTPFollower.OnConnect): a
// line when it was down.
func (p *watchPrinter) connected() {
	if p.finished || p.down == "" {
		return
	}
	p.down = ""
	p.format.up(&p.buf, p.now())
	p.flush()
}

// sameConns reports whether a holds exactly the connections of b (by JID),
// in the same states, Since included.
func sameConns(a []presence.Conn, b map[string]presence.Conn) bool {
	if len(a) != len(b) {
		return false
	}
	for _, c := range a {
		o, ok := b[c.JID]
		if !ok || !o.SameState(c) || !o.Since.Equal(c.Since) {
			return false
		}
	}
	return true
}

// byJID indexes conns by JID.
func byJID(conns []presence.Conn) map[string]presence.Conn {
	m := make(map[string]presence.Conn, len(conns))
	for _, c := range conns {
		m[c.JID] = c
	}
	return m
}

// watchFormat writes output lines into a buffer.
type watchFormat interface {
	// status reports a service status other than online; restarted says
	// whether a state was shown before.
	status(b *bytes.Buffer, now time.Time, status string, restarted bool)
	// state prints the connections of a snapshot, sorted by JID.
	state(b *bytes.Buffer, now time.Time, conns []presence.Conn)
	// change prints a connection that appeared (old nil), changed, or went
	// away (c.Show offline).
	change(b *bytes.Buffer, now time.Time, c presence.Conn, old *presence.Conn)
	// down reports that the event stream is down for reason and opened
	// again after wait; kept says whether a state was shown before.
	down(b *bytes.Buffer, now time.Time, reason string, wait time.Duration, kept bool)
	// up reports that the event stream is open again.
	up(b *bytes.Buffer, now time.Time)
}

// tableFormat is the human format: a table per snapshot, a line per change.
type tableFormat struct{ loc *time.Location }

func (f tableFormat) clock(t time.Time) string { return t.In(f.loc).Format("15:04:05") }

func (f tableFormat) status(b *bytes.Buffer, now time.Time, status string, restarted bool) {
	var what string
	switch {
	case status == "" && restarted:
		what = "unknown (the status item is gone); keeping the last state"
	case status == "":
		what = "unknown (the status item is gone)"
	case status == watch.StatusInit && restarted:
		what = "init: the service restarted; keeping the last state until it is online again"
	case status == watch.StatusInit:
		what = "init: the service is starting; waiting until it is online"
	default:
		what = cell(status) + ": not online; keeping the last state"
	}
	fmt.Fprintf(b, "%s service status %s\n", f.clock(now), what)
}

func (f tableFormat) state(b *bytes.Buffer, now time.Time, conns []presence.Conn) {
	switch len(conns) {
	case 0:
		fmt.Fprintf(b, "%s online: no connections\n", f.clock(now))
		return
	case 1:
		fmt.Fprintf(b, "%s online: 1 connection\n", f.clock(now))
	default:
		fmt.Fprintf(b, "%s online: %d connections\n", f.clock(now), len(conns))
	}
	tw := tabwriter.NewWriter(b, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "JID\tSHOW\tPRIO\tSTATUS TEXT\tIP\tSINCE\tIDLE")
	for _, c := range conns {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", cell(c.JID), cell(string(c.Show)), c.Priority, cell(c.Text), cell(c.IP),
			f.date(c.Since), f.date(c.Idle))
	}
	_ = tw.Flush() // writes to a bytes.Buffer
}

// date formats a since or idle time for a table cell: "-" when zero.
func (f tableFormat) date(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.In(f.loc).Format("2006-01-02 15:04:05")
}

func (f tableFormat) change(b *bytes.Buffer, now time.Time, c presence.Conn, old *presence.Conn) {
	if c.Show == presence.Offline {
		fmt.Fprintf(b, "%s  offline  %s\n", f.clock(now), cell(c.JID))
		return
	}
	what := "new    "
	if old != nil {
		what = "changed"
	}
	ip := c.IP
	if ip == "" {
		ip = "-"
	}
	fmt.Fprintf(b, "%s  %s  %s  %s  prio=%d  text=%s  ip=%s", f.clock(now), what, cell(c.JID), cell(string(c.Show)),
		c.Priority, strconv.Quote(c.Text), cell(ip))
	if !c.Idle.IsZero() {
		fmt.Fprintf(b, "  idle=%s", f.date(c.Idle))
	}
	if old != nil {
		var diff []string
		if old.Show != c.Show {
			diff = append(diff, "show")
		}
		if old.Priority != c.Priority {
			diff = append(diff, "prio")
		}
		if old.Text != c.Text {
			diff = append(diff, "text")
		}
		if old.IP != c.IP {
			diff = append(diff, "ip")
		}
		if !old.Idle.Equal(c.Idle) {
			diff = append(diff, "idle")
		}
		fmt.Fprintf(b, "  (%s)", strings.Join(diff, ", "))
	}
	b.WriteByte('\n')
}

func (f tableFormat) down(b *bytes.Buffer, now time.Time, reason string, wait time.Duration, kept bool) {
	fmt.Fprintf(b, "%s stream down (%s); retrying in %s", f.clock(now), reason, wait)
	if kept {
		b.WriteString(", keeping the last state")
	}
	b.WriteByte('\n')
}

func (f tableFormat) up(b *bytes.Buffer, now time.Time) {
	fmt.Fprintf(b, "%s stream back\n", f.clock(now))
}

// cell makes s safe for one table cell: "-" when empty, quoted when it
// holds anything but printable characters (a tab or a newline would break
// the table).
func cell(s string) string {
	if s == "" {
		return "-"
	}
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// jsonFormat writes JSON lines; see watchUsage for the fields.
type jsonFormat struct{}

type jsonStatus struct {
	Event  string `json:"event"`
	Time   string `json:"time"`
	Status string `json:"status"`
}

type jsonConn struct {
	Event    string `json:"event"`
	Time     string `json:"time"`
	JID      string `json:"jid"`
	Show     string `json:"show"`
	Priority int    `json:"priority"`
	Text     string `json:"text"`
	IP       string `json:"ip"`
	Since    string `json:"since"`
	Idle     string `json:"idle"`
}

type jsonEvent struct {
	Event string `json:"event"`
	Time  string `json:"time"`
}

type jsonDown struct {
	Event   string  `json:"event"`
	Time    string  `json:"time"`
	Error   string  `json:"error"`
	RetryIn float64 `json:"retry_in"`
}

type jsonOnline struct {
	Event       string `json:"event"`
	Time        string `json:"time"`
	Connections int    `json:"connections"`
}

func jsonTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func jsonLine(b *bytes.Buffer, v any) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // plain structs of strings and ints
}

func connLine(event string, now time.Time, c presence.Conn) jsonConn {
	return jsonConn{Event: event, Time: jsonTime(now), JID: c.JID, Show: string(c.Show), Priority: c.Priority,
		Text: c.Text, IP: c.IP, Since: jsonTime(c.Since), Idle: jsonTime(c.Idle)}
}

func (jsonFormat) status(b *bytes.Buffer, now time.Time, status string, _ bool) {
	jsonLine(b, jsonStatus{Event: "status", Time: jsonTime(now), Status: status})
}

func (jsonFormat) state(b *bytes.Buffer, now time.Time, conns []presence.Conn) {
	for _, c := range conns {
		jsonLine(b, connLine("state", now, c))
	}
	jsonLine(b, jsonOnline{Event: "online", Time: jsonTime(now), Connections: len(conns)})
}

func (jsonFormat) change(b *bytes.Buffer, now time.Time, c presence.Conn, _ *presence.Conn) {
	event := "available"
	if c.Show == presence.Offline {
		event = "offline"
	}
	jsonLine(b, connLine(event, now, c))
}

func (jsonFormat) down(b *bytes.Buffer, now time.Time, reason string, wait time.Duration, _ bool) {
	jsonLine(b, jsonDown{Event: "reconnecting", Time: jsonTime(now), Error: reason, RetryIn: wait.Seconds()})
}

func (jsonFormat) up(b *bytes.Buffer, now time.Time) {
	jsonLine(b, jsonEvent{Event: "reconnected", Time: jsonTime(now)})
}
