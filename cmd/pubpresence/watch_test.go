package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/presence"
	"github.com/pubpresence/pubpresence/watch"
)

func TestParseWatch(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret\r\nsecond line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, testCAPEM(t), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyFile := filepath.Join(dir, "empty")
	if err := os.WriteFile(emptyFile, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		args  []string
		env   string
		want  func(*watchOptions) string // "" when o is right
		error string                     // substring of the usage error
	}{
		{name: "defaults", args: []string{"--jid", "Monitor@Example.org"}, env: "envpw",
			want: func(o *watchOptions) string {
				switch {
				case o.jid != "monitor@example.org":
					return "jid " + o.jid
				case o.password != "envpw":
					return "password from the environment"
				case o.pubsub != "pubsub.example.org":
					return "pubsub " + o.pubsub
				case o.server != "127.0.0.1:5222":
					return "server " + o.server
				case !strings.HasPrefix(o.resource, "watch-") || len(o.resource) != len("watch-")+8:
					return "resource " + o.resource
				case o.nodes != watch.DefaultNodes():
					return "nodes"
				case o.format != "table" || o.once || o.timeout != 10*time.Second:
					return "format, once or timeout"
				case o.tls == nil || o.tls.RootCAs != nil || o.tls.ServerName != "" || o.clientConfig().TLS != o.tls:
					return "TLS: required, system roots, the JID's domain"
				case o.clientConfig().JID != "monitor@example.org" || o.clientConfig().Password != "envpw" ||
					o.clientConfig().Resource != o.resource || o.clientConfig().Timeout != 10*time.Second:
					return "client config"
				}
				return ""
			}},
		{name: "everything", env: "envpw", args: []string{"--jid", "m@x", "--server", "[::1]:5333", "--pubsub", "ps.x",
			"--resource", "r1", "--live", "l", "--actual", "a", "--status", "s", "--format", "json", "--once",
			"--timeout", "3s", "--password-file", pwFile},
			want: func(o *watchOptions) string {
				switch {
				case o.password != "s3cret":
					return "password from the file: " + o.password
				case o.server != "[::1]:5333" || o.pubsub != "ps.x" || o.resource != "r1":
					return "server, pubsub or resource"
				case o.nodes != (watch.Nodes{Live: "l", Actual: "a", Status: "s"}):
					return "nodes"
				case o.format != "json" || !o.once || o.timeout != 3*time.Second:
					return "format, once or timeout"
				}
				return ""
			}},
		{name: "password flag beats env", env: "envpw", args: []string{"--jid", "m@x", "--password", "flagpw"},
			want: func(o *watchOptions) string {
				if o.password != "flagpw" {
					return "password " + o.password
				}
				return ""
			}},
		{name: "no jid", args: []string{"--password", "p"}, error: "--jid is required"},
		{name: "full jid", args: []string{"--jid", "m@x/r", "--password", "p"}, error: "bare JID"},
		{name: "domain jid", args: []string{"--jid", "x", "--password", "p"}, error: "need user@domain"},
		{name: "bad jid", args: []string{"--jid", "a b@x", "--password", "p"}, error: "--jid"},
		{name: "no password", args: []string{"--jid", "m@x"}, error: "no password"},
		{name: "two passwords", args: []string{"--jid", "m@x", "--password", "p", "--password-file", pwFile}, error: "not both"},
		{name: "missing password file", args: []string{"--jid", "m@x", "--password-file", filepath.Join(dir, "nope")}, error: "--password-file"},
		{name: "empty password file", args: []string{"--jid", "m@x", "--password-file", emptyFile}, error: "first line is empty"},
		{name: "bad server", args: []string{"--jid", "m@x", "--password", "p", "--server", "localhost"}, error: "--server"},
		{name: "bad pubsub", args: []string{"--jid", "m@x", "--password", "p", "--pubsub", "a@b"}, error: "--pubsub"},
		{name: "bad resource", args: []string{"--jid", "m@x", "--password", "p", "--resource", "a\x01"}, error: "--resource"},
		{name: "same nodes", args: []string{"--jid", "m@x", "--password", "p", "--live", "n", "--actual", "n"}, error: "three different"},
		{name: "empty node", args: []string{"--jid", "m@x", "--password", "p", "--status", ""}, error: "must not be empty"},
		{name: "bad format", args: []string{"--jid", "m@x", "--password", "p", "--format", "xml"}, error: "want table or json"},
		{name: "bad timeout", args: []string{"--jid", "m@x", "--password", "p", "--timeout", "0s"}, error: "--timeout"},
		{name: "extra argument", args: []string{"--jid", "m@x", "--password", "p", "more"}, error: `unexpected argument "more"`},
		{name: "plain", args: []string{"--jid", "m@x", "--password", "p", "--plain"},
			want: func(o *watchOptions) string {
				if o.tls != nil || o.clientConfig().TLS != nil {
					return "TLS with --plain"
				}
				return ""
			}},
		{name: "ca and name", args: []string{"--jid", "m@x", "--password", "p", "--ca", caFile, "--tls-name", "xmpp.x"},
			want: func(o *watchOptions) string {
				if o.tls == nil || o.tls.RootCAs == nil || o.tls.ServerName != "xmpp.x" {
					return "TLS settings"
				}
				return ""
			}},
		{name: "plain with ca", args: []string{"--jid", "m@x", "--password", "p", "--plain", "--ca", caFile}, error: "do not go with it"},
		{name: "missing ca", args: []string{"--jid", "m@x", "--password", "p", "--ca", filepath.Join(dir, "nope")}, error: "--ca"},
		{name: "ca not pem", args: []string{"--jid", "m@x", "--password", "p", "--ca", pwFile}, error: "no PEM certificate"},
		{name: "unknown flag", args: []string{"--tls"}, error: "flag provided but not defined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			o, err := parseWatch(tc.args, &stderr, func(k string) string {
				if k == watchPasswordEnv {
					return tc.env
				}
				return ""
			})
			if tc.error != "" {
				var ue *usageError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.error) {
					t.Fatalf("error %v, want a usage error with %q", err, tc.error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if what := tc.want(o); what != "" {
				t.Errorf("wrong %s: %+v", what, *o)
			}
		})
	}
}

func TestWatchMain(t *testing.T) {
	t.Setenv(watchPasswordEnv, "")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String() // nobody listens there once closed
	ln.Close()
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string
		stderr []string
	}{
		{args: []string{"watch", "-h"}, code: 0, stderr: []string{"usage: pubpresence watch", `{"event":"state"`, "-password-file"}},
		{args: []string{"watch", "--jid", "m@x"}, code: 2, stderr: []string{"pubpresence watch: no password", "watch -h"}},
		{args: []string{"watch", "--frob"}, code: 2, stderr: []string{"flag provided but not defined: -frob", "usage: pubpresence watch"}},
		{args: []string{"watch", "--jid", "m@x", "--password", "hunter2", "--server", closed}, code: 1,
			stderr: []string{"pubpresence watch: connect to " + closed + ": ", "refused"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr); code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr.String())
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout: %q", stdout.String())
			}
			for _, s := range tc.stderr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr.String())
				}
			}
			if strings.Contains(stderr.String(), "hunter2") {
				t.Errorf("the password is printed:\n%s", stderr.String())
			}
			if tc.code == 1 && strings.Count(stderr.String(), "\n") != 1 {
				t.Errorf("want one line on stderr:\n%s", stderr.String())
			}
		})
	}
}

var (
	t0    = time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	alice = presence.Conn{JID: "alice@x/laptop", Show: presence.Online, Priority: 5, IP: "127.0.0.1", Since: t0}
	bob   = presence.Conn{JID: "bob@x/desk", Show: presence.Away, Text: "At lunch\tback at 2", Priority: -1, Since: t0, Idle: t0.Add(-5 * time.Minute)}
)

func TestTableFormat(t *testing.T) {
	f := tableFormat{loc: time.UTC}
	now := t0.Add(90 * time.Second)
	var b bytes.Buffer
	f.status(&b, now, watch.StatusInit, false)
	f.state(&b, now, []presence.Conn{alice, bob})
	f.state(&b, now, nil)
	f.change(&b, now, presence.Conn{JID: "carol@x/r", Show: presence.DND, Text: "busy"}, nil)
	away := alice
	away.Show, away.Text = presence.Away, "brb"
	f.change(&b, now, away, &alice)
	idle := away
	idle.Idle = t0.Add(time.Minute)
	f.change(&b, now, idle, &away)
	f.change(&b, now, presence.Conn{JID: "bob@x/desk", Show: presence.Offline}, &bob)
	f.status(&b, now, watch.StatusInit, true)
	f.status(&b, now, "", true)
	want := `09:01:30 service status init: the service is starting; waiting until it is online
09:01:30 online: 2 connections
JID             SHOW    PRIO  STATUS TEXT            IP         SINCE                IDLE
alice@x/laptop  online  5     -                      127.0.0.1  2026-11-21 09:00:00  -
bob@x/desk      away    -1    "At lunch\tback at 2"  -          2026-11-21 09:00:00  2026-11-21 08:55:00
09:01:30 online: no connections
09:01:30  new      carol@x/r  dnd  prio=0  text="busy"  ip=-
09:01:30  changed  alice@x/laptop  away  prio=5  text="brb"  ip=127.0.0.1  (show, text)
09:01:30  changed  alice@x/laptop  away  prio=5  text="brb"  ip=127.0.0.1  idle=2026-11-21 09:01:00  (idle)
09:01:30  offline  bob@x/desk
09:01:30 service status init: the service restarted; keeping the last state until it is online again
09:01:30 service status unknown (the status item is gone); keeping the last state
`
	if got := b.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestJSONFormat(t *testing.T) {
	var f jsonFormat
	now := t0.Add(1500 * time.Millisecond)
	var b bytes.Buffer
	f.status(&b, now, watch.StatusInit, false)
	f.state(&b, now, []presence.Conn{alice, bob})
	f.change(&b, now, presence.Conn{JID: "carol@x/r", Show: presence.DND, Text: "<b>&"}, nil)
	f.change(&b, now, presence.Conn{JID: "bob@x/desk", Show: presence.Offline}, &bob)
	want := `{"event":"status","time":"2026-11-21T09:00:01.5Z","status":"init"}
{"event":"state","time":"2026-11-21T09:00:01.5Z","jid":"alice@x/laptop","show":"online","priority":5,"text":"","ip":"127.0.0.1","since":"2026-11-21T09:00:00Z","idle":""}
{"event":"state","time":"2026-11-21T09:00:01.5Z","jid":"bob@x/desk","show":"away","priority":-1,"text":"At lunch\tback at 2","ip":"","since":"2026-11-21T09:00:00Z","idle":"2026-11-21T08:55:00Z"}
{"event":"online","time":"2026-11-21T09:00:01.5Z","connections":2}
{"event":"available","time":"2026-11-21T09:00:01.5Z","jid":"carol@x/r","show":"dnd","priority":0,"text":"<b>&","ip":"","since":"","idle":""}
{"event":"offline","time":"2026-11-21T09:00:01.5Z","jid":"bob@x/desk","show":"offline","priority":0,"text":"","ip":"","since":"","idle":""}
`
	if got := b.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	for i, line := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("line %d is not JSON: %v", i+1, err)
		}
	}
}

func newTestPrinter(once bool) (*watchPrinter, *bytes.Buffer) {
	var out bytes.Buffer
	p := newWatchPrinter(&out, jsonFormat{}, once)
	p.now = func() time.Time { return t0 }
	return p, &out
}

// events returns the event field of each line printed since the last call,
// with the jid when there is one.
func events(t *testing.T, out *bytes.Buffer) []string {
	t.Helper()
	var got []string
	for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		if line == "" {
			continue
		}
		var m struct {
			Event, JID, Show, Status string
			Connections              int
		}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		s := m.Event
		switch m.Event {
		case "status":
			s += " " + m.Status
		case "online":
			s += " " + string(rune('0'+m.Connections))
		default:
			s = strings.TrimSpace(s + " " + m.JID + " " + m.Show)
		}
		got = append(got, s)
	}
	out.Reset()
	return got
}

func expect(t *testing.T, out *bytes.Buffer, want ...string) {
	t.Helper()
	got := events(t, out)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("printed:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// event plays one Follower event.
func event(p *watchPrinter, c presence.Conn) { p.event(watch.Event{ID: c.JID, Conn: c}) }

func TestWatchPrinterLifecycle(t *testing.T) {
	p, out := newTestPrinter(false)
	p.status(watch.StatusInit)
	p.status(watch.StatusInit) // a repeat prints nothing
	expect(t, out, "status init")

	// Online is printed with its snapshot.
	p.status(watch.StatusOnline)
	expect(t, out)
	p.snapshot([]presence.Conn{alice, bob})
	expect(t, out, "state alice@x/laptop online", "state bob@x/desk away", "online 2")

	// Changes; a repeated item and the offline of a stranger print nothing.
	carol := presence.Conn{JID: "carol@x/r", Show: presence.Chat}
	event(p, carol)
	event(p, carol)
	away := alice
	away.Show = presence.Away
	event(p, away)
	idle := away // going idle and back are changes
	idle.Idle = t0
	event(p, idle)
	event(p, idle)
	event(p, away)
	event(p, presence.Conn{JID: "bob@x/desk", Show: presence.Offline})
	event(p, presence.Conn{JID: "nobody@x/r", Show: presence.Offline})
	expect(t, out, "available carol@x/r chat", "available alice@x/laptop away", "available alice@x/laptop away",
		"available alice@x/laptop away", "offline bob@x/desk offline")

	// A repeated online whose snapshot is the state printed: nothing.
	p.status(watch.StatusOnline)
	p.snapshot([]presence.Conn{away, carol})
	expect(t, out)

	// A restart of the service, with the same state after it: printed
	// again, since readers were told to wait.
	p.status(watch.StatusInit)
	expect(t, out, "status init")
	p.status(watch.StatusOnline)
	p.snapshot([]presence.Conn{away, carol})
	expect(t, out, "state alice@x/laptop away", "state carol@x/r chat", "online 2")

	// The status item went away.
	p.status("")
	expect(t, out, "status ")
}

func TestWatchPrinterOnce(t *testing.T) {
	p, out := newTestPrinter(true)
	p.status(watch.StatusOnline)
	select {
	case <-p.done:
		t.Fatal("done before the state was printed")
	default:
	}
	p.snapshot(nil)
	expect(t, out, "online 0")
	select {
	case <-p.done:
	default:
		t.Fatal("not done after the state with once")
	}
	event(p, alice)
	p.status(watch.StatusInit)
	expect(t, out)
}

func TestWatchPrinterWriteError(t *testing.T) {
	p := newWatchPrinter(failWriter{}, jsonFormat{}, false)
	p.status(watch.StatusInit)
	if p.err == nil || !strings.Contains(p.err.Error(), "disk full") {
		t.Errorf("err = %v", p.err)
	}
	select {
	case <-p.done:
	default:
		t.Error("printing goes on after a failed write")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWatchHelpIsNotAnError(t *testing.T) {
	var stderr bytes.Buffer
	if _, err := parseWatch([]string{"--help"}, &stderr, os.Getenv); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v", err)
	}
}

// testCAPEM returns a self-signed CA certificate in PEM.
func testCAPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestWatchRefusesPlainInTheClear: with --plain, a server that offers only
// SASL PLAIN gets no password, and the one line on stderr says why.
func TestWatchRefusesPlainInTheClear(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = conn.Write([]byte("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'" +
			" id='s1' from='localhost' version='1.0'><stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" +
			"<mechanism>PLAIN</mechanism></mechanisms></stream:features>"))
		var all bytes.Buffer
		_, _ = all.ReadFrom(conn) // until the client hangs up
		got <- all.String()
	}()
	var stderr bytes.Buffer
	o, err := parseWatch([]string{"--jid", "alice@localhost", "--password", "s3cret", "--server", ln.Addr().String(), "--plain"}, &stderr, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	err = runWatch(t.Context(), o, &bytes.Buffer{}, &stderr)
	if err == nil || !strings.Contains(err.Error(), "drop --plain") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("err = %v, want the refusal of PLAIN in the clear", err)
	}
	if sent := <-got; strings.Contains(sent, "<auth") || strings.Contains(sent, "s3cret") {
		t.Errorf("the client sent %q", sent)
	}
}
