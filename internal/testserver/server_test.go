//go:build integration

package testserver

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rawHandshake authenticates as a component over a fresh TCP connection,
// written out by hand rather than with the package's own client, and returns
// the local name of the first element the server sends after <handshake/>
// was sent ("handshake" on success), plus the condition of a stream error.
func rawHandshake(t *testing.T, addr, name, secret string) (got, cond string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "+
		"xmlns:stream='http://etherx.jabber.org/streams' to='%s'>", name)
	dec := xml.NewDecoder(conn)
	var id string
	for header := false; !header; {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("read stream header from %s: %v", addr, err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "stream" {
			header = true
			for _, a := range se.Attr {
				if a.Name.Local == "id" {
					id = a.Value
				}
			}
		}
	}
	// An unknown component name gets an empty id and a stream error at once.
	if id != "" {
		sum := sha1.Sum([]byte(id + secret))
		fmt.Fprintf(conn, "<handshake>%s</handshake>", hex.EncodeToString(sum[:]))
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("read handshake answer from %s: %v", addr, err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if se.Name.Local == "error" {
			var e struct {
				Any []struct{ XMLName xml.Name } `xml:",any"`
			}
			if err := dec.DecodeElement(&e, &se); err != nil {
				t.Fatalf("read stream error: %v", err)
			}
			if len(e.Any) > 0 {
				cond = e.Any[0].XMLName.Local
			}
		}
		fmt.Fprint(conn, "</stream:stream>")
		return se.Name.Local, cond
	}
}

// errAuthFailed is a SASL <failure/>.
var errAuthFailed = errors.New("sasl failure")

// plainLogin opens a c2s stream to addr and runs SASL PLAIN for
// local@domain. It returns nil on <success/> and errAuthFailed on <failure/>.
func plainLogin(addr, domain, local, password string) error {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "+
		"xmlns:stream='http://etherx.jabber.org/streams' to='%s' version='1.0'>", domain)
	dec := xml.NewDecoder(conn)
	sentAuth := false
	for {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("c2s %s: %w", addr, err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch se.Name.Local {
		case "stream":
		case "features":
			var f struct {
				Mechs []string `xml:"urn:ietf:params:xml:ns:xmpp-sasl mechanisms>mechanism"`
			}
			if err := dec.DecodeElement(&f, &se); err != nil {
				return err
			}
			if !strings.Contains(strings.Join(f.Mechs, " "), "PLAIN") {
				return fmt.Errorf("c2s %s: PLAIN not offered: %v", addr, f.Mechs)
			}
			creds := base64.StdEncoding.EncodeToString([]byte("\x00" + local + "\x00" + password))
			fmt.Fprintf(conn, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>", creds)
			sentAuth = true
		case "success":
			if !sentAuth {
				return errors.New("success before auth")
			}
			fmt.Fprint(conn, "</stream:stream>")
			return nil
		case "failure":
			return errAuthFailed
		default:
			return fmt.Errorf("c2s %s: unexpected <%s/>", addr, se.Name.Local)
		}
	}
}

func TestIntegrationProsodyComponentHandshake(t *testing.T) {
	s := StartProsody(t)
	if s.Kind != "prosody" || s.Domain != "localhost" || s.Component != "pubpresence.localhost" || s.Pubsub != "pubsub.localhost" {
		t.Errorf("server names = %q %q %q %q", s.Kind, s.Domain, s.Component, s.Pubsub)
	}
	addrs := []string{s.ComponentAddr}
	if s.ComponentAddr6 != "" {
		addrs = append(addrs, s.ComponentAddr6)
	} else {
		t.Log("no IPv6 loopback: ::1 not tested")
	}
	for _, addr := range addrs {
		if got, cond := rawHandshake(t, addr, s.Component, s.Secret); got != "handshake" {
			t.Errorf("handshake on %s: got <%s/> (%s), want <handshake/>", addr, got, cond)
		}
	}
	if got, cond := rawHandshake(t, s.ComponentAddr, s.Component, "wrong"); got != "error" || cond != "not-authorized" {
		t.Errorf("handshake with a wrong secret: got <%s/> %q, want a not-authorized stream error", got, cond)
	}

	out, err := exec.Command("prosodyctl", "--config", s.ConfigPath, "check", "config").CombinedOutput()
	if err != nil {
		t.Errorf("prosodyctl check config: %v\n%s", err, out)
	}
	snippet := s.ConfigSnippet()
	for _, want := range []string{`admins = { "pubpresence.localhost" }`, `component_secret = "s3cret"`,
		`Component "pubsub.localhost" "pubsub"`, `storage = "sql"`, "pubsub_max_items = 10000"} {
		if !strings.Contains(snippet, want) {
			t.Errorf("ConfigSnippet lacks %q:\n%s", want, snippet)
		}
	}
	if strings.Contains(snippet, s.harness) {
		t.Errorf("ConfigSnippet shows the harness component:\n%s", snippet)
	}
}

func TestIntegrationProsodyCreateUsers(t *testing.T) {
	s := StartProsody(t)
	const n = 200
	locals := make([]string, n)
	for i := range locals {
		locals[i] = fmt.Sprintf("user%03d", i)
	}
	began := time.Now()
	if err := s.CreateUsers(locals, "pw1"); err != nil {
		t.Fatalf("CreateUsers: %v", err)
	}
	took := time.Since(began)
	t.Logf("created %d users in %v (%v per user)", n, took.Round(time.Millisecond), (took / n).Round(time.Microsecond))
	if took > 10*time.Second {
		t.Errorf("creating %d users took %v, want well under 10 s", n, took)
	}
	for _, l := range []string{locals[0], locals[n/2], locals[n-1]} {
		if err := plainLogin(s.C2SAddr, s.Domain, l, "pw1"); err != nil {
			t.Errorf("login %s: %v", l, err)
		}
	}
	if err := plainLogin(s.C2SAddr, s.Domain, "nosuchuser", "pw1"); !errors.Is(err, errAuthFailed) {
		t.Errorf("login of a user never created: got %v, want %v", err, errAuthFailed)
	}
	if s.C2SAddr6 != "" {
		if err := plainLogin(s.C2SAddr6, s.Domain, locals[1], "pw1"); err != nil {
			t.Errorf("login over %s: %v", s.C2SAddr6, err)
		}
	}

	// Existing users get the new password, new ones are created.
	if err := s.CreateUsers([]string{locals[0], "fresh"}, "pw2"); err != nil {
		t.Fatalf("CreateUsers again: %v", err)
	}
	for _, l := range []string{locals[0], "fresh"} {
		if err := plainLogin(s.C2SAddr, s.Domain, l, "pw2"); err != nil {
			t.Errorf("login %s with the new password: %v", l, err)
		}
	}
	if err := plainLogin(s.C2SAddr, s.Domain, locals[0], "pw1"); !errors.Is(err, errAuthFailed) {
		t.Errorf("login %s with the old password: got %v, want %v", locals[0], err, errAuthFailed)
	}

	for _, bad := range []string{"", "a@b", "a b", "x/y"} {
		if err := s.CreateUsers([]string{bad}, "pw"); err == nil {
			t.Errorf("CreateUsers(%q) succeeded, want an error", bad)
		}
	}
}

func TestIntegrationProsodyStopStartKeepsData(t *testing.T) {
	for _, storage := range []string{"sql", "internal"} {
		t.Run(storage, func(t *testing.T) {
			s := StartProsody(t, WithStorage(storage))
			if err := s.CreateUsers([]string{"alice"}, "pw"); err != nil {
				t.Fatalf("CreateUsers: %v", err)
			}
			c2s, comp := s.C2SAddr, s.ComponentAddr
			began := time.Now()
			if err := s.Stop(); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			stopped := time.Since(began)
			if err := s.Stop(); err != nil {
				t.Errorf("second Stop: %v", err)
			}
			if s.Pid() != 0 {
				t.Errorf("Pid after Stop = %d, want 0", s.Pid())
			}
			if c, err := net.DialTimeout("tcp", c2s, time.Second); err == nil {
				c.Close()
				t.Errorf("c2s port %s still accepts after Stop", c2s)
			}
			began = time.Now()
			if err := s.Start(); err != nil {
				t.Fatalf("Start: %v", err)
			}
			t.Logf("stop took %v, start %v", stopped.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
			if err := s.Start(); err == nil {
				t.Errorf("Start of a running server succeeded, want an error")
			}
			if s.C2SAddr != c2s || s.ComponentAddr != comp {
				t.Errorf("addresses changed over Stop/Start: %s %s -> %s %s", c2s, comp, s.C2SAddr, s.ComponentAddr)
			}
			if err := plainLogin(s.C2SAddr, s.Domain, "alice", "pw"); err != nil {
				t.Errorf("login after Stop/Start: %v", err)
			}
			began = time.Now()
			if err := s.Restart(); err != nil {
				t.Fatalf("Restart: %v", err)
			}
			t.Logf("restart took %v", time.Since(began).Round(time.Millisecond))
			if err := plainLogin(s.C2SAddr, s.Domain, "alice", "pw"); err != nil {
				t.Errorf("login after Restart: %v", err)
			}
			if !strings.Contains(s.LogTail(1000), "Hello and welcome to Prosody") {
				t.Errorf("LogTail does not show the start-up line:\n%s", s.LogTail(20))
			}
		})
	}
}

func TestIntegrationProsodyKill(t *testing.T) {
	s := StartProsody(t)
	if err := s.CreateUsers([]string{"bob"}, "pw"); err != nil {
		t.Fatalf("CreateUsers: %v", err)
	}
	pid := s.Pid()
	if pid == 0 {
		t.Fatal("Pid = 0 for a running server")
	}
	if err := s.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if s.Pid() != 0 {
		t.Errorf("Pid after Kill = %d, want 0", s.Pid())
	}
	if c, err := net.DialTimeout("tcp", s.ComponentAddr, time.Second); err == nil {
		c.Close()
		t.Errorf("component port %s still accepts after Kill", s.ComponentAddr)
	}
	if err := s.Kill(); err != nil {
		t.Errorf("second Kill: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("Start after Kill: %v", err)
	}
	if s.Pid() == 0 || s.Pid() == pid {
		t.Errorf("Pid after Start = %d (was %d), want a new process", s.Pid(), pid)
	}
	if err := plainLogin(s.C2SAddr, s.Domain, "bob", "pw"); err != nil {
		t.Errorf("login after Kill/Start: %v", err)
	}
}

func TestIntegrationProsodyTwoServers(t *testing.T) {
	s1 := StartProsody(t)
	s2 := StartProsody(t, WithComponent("other.localhost", "t0p"))
	if s1.Dir == s2.Dir || s1.C2SAddr == s2.C2SAddr || s1.ComponentAddr == s2.ComponentAddr {
		t.Fatalf("servers share dir or ports: %+v %+v", s1, s2)
	}
	if err := s1.CreateUsers([]string{"carol"}, "pw"); err != nil {
		t.Fatalf("CreateUsers: %v", err)
	}
	if err := plainLogin(s1.C2SAddr, s1.Domain, "carol", "pw"); err != nil {
		t.Errorf("login on server 1: %v", err)
	}
	if err := plainLogin(s2.C2SAddr, s2.Domain, "carol", "pw"); !errors.Is(err, errAuthFailed) {
		t.Errorf("login on server 2 of a user made on server 1: got %v, want %v", err, errAuthFailed)
	}
	if got, _ := rawHandshake(t, s2.ComponentAddr, "other.localhost", "t0p"); got != "handshake" {
		t.Errorf("handshake as other.localhost on server 2: got <%s/>", got)
	}
	if got, cond := rawHandshake(t, s1.ComponentAddr, "other.localhost", "t0p"); got != "error" || cond != "host-unknown" {
		t.Errorf("server 1 with server 2's component: got <%s/> %q, want a host-unknown stream error", got, cond)
	}
	if err := s1.Stop(); err != nil {
		t.Fatalf("Stop server 1: %v", err)
	}
	if got, _ := rawHandshake(t, s2.ComponentAddr, "other.localhost", "t0p"); got != "handshake" {
		t.Errorf("server 2 after server 1 stopped: got <%s/>", got)
	}
}

// adminCommandCount returns how many ad-hoc commands on the server's domain
// the component sees in disco#items.
func adminCommandCount(t *testing.T, s *Server) int {
	t.Helper()
	return adminCommandCountAs(t, s, s.Component, s.Secret)
}

// harnessAddrFor returns where the component name connects.
func (s *Server) harnessAddrFor(name string) string {
	if name == s.harness {
		return s.harnessAddr
	}
	return s.ComponentAddr
}

// adminCommandCountAs is adminCommandCount for the component name.
func adminCommandCountAs(t *testing.T, s *Server, name, secret string) int {
	t.Helper()
	c, err := dialComponent(s.harnessAddrFor(name), name, secret, 10*time.Second)
	if err != nil {
		t.Fatalf("connect component: %v", err)
	}
	defer c.close()
	c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c.conn, "<iq type='get' id='d1' from='%s' to='%s'><query xmlns='http://jabber.org/protocol/disco#items' "+
		"node='http://jabber.org/protocol/commands'/></iq>", name, s.Domain)
	for {
		start, err := c.nextElement()
		if err != nil {
			t.Fatalf("read disco#items: %v", err)
		}
		var iq struct {
			ID    string `xml:"id,attr"`
			Type  string `xml:"type,attr"`
			Items []struct {
				Node string `xml:"node,attr"`
			} `xml:"query>item"`
		}
		if err := c.dec.DecodeElement(&iq, &start); err != nil {
			t.Fatalf("decode: %v", err)
		}
		if start.Name.Local != "iq" || iq.ID != "d1" {
			continue
		}
		if iq.Type != "result" {
			t.Fatalf("disco#items: type %q", iq.Type)
		}
		n := 0
		for _, it := range iq.Items {
			if strings.Contains(it.Node, "/admin#") {
				n++
			}
		}
		return n
	}
}

func TestIntegrationProsodyOptions(t *testing.T) {
	t.Run("admin", func(t *testing.T) {
		s := StartProsody(t, WithMaxItems(500), WithConflictResolve("kick_old"))
		if n := adminCommandCount(t, s); n < 5 {
			t.Errorf("admin component sees %d commands, want the XEP-0133 set (8 on Prosody)", n)
		}
		// kick_old: a second connection wins.
		if got, cond := rawHandshake(t, s.ComponentAddr, s.Component, s.Secret); got != "handshake" {
			t.Errorf("handshake: got <%s/> %s", got, cond)
		}
		for _, want := range []string{"pubsub_max_items = 500", `component_conflict_resolve = "kick_old"`} {
			if !strings.Contains(s.ConfigSnippet(), want) {
				t.Errorf("ConfigSnippet lacks %q", want)
			}
		}
	})
	t.Run("without admin", func(t *testing.T) {
		s := StartProsody(t, WithoutAdmin(), WithStorage("internal"))
		if n := adminCommandCount(t, s); n != 0 {
			t.Errorf("non-admin component sees %d commands, want 0", n)
		}
		// The harness keeps its own admin rights.
		if err := s.CreateUsers([]string{"dave"}, "pw"); err != nil {
			t.Errorf("CreateUsers without component admin: %v", err)
		}
		if strings.Contains(s.ConfigSnippet(), "admins") {
			t.Errorf("ConfigSnippet has admins for a non-admin component:\n%s", s.ConfigSnippet())
		}
	})
}

func TestIntegrationPortTaken(t *testing.T) {
	for _, kind := range Kinds {
		t.Run(string(kind), func(t *testing.T) {
			s := Start(t, kind, WithoutAdmin())
			if n := adminCommandCount(t, s); n != 0 {
				t.Errorf("non-admin component sees %d admin commands, want 0", n)
			}
			if err := s.Stop(); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			l, err := net.Listen("tcp", s.C2SAddr)
			if err != nil {
				t.Fatalf("occupy %s: %v", s.C2SAddr, err)
			}
			defer l.Close()
			began := time.Now()
			err = s.Start()
			if !errors.Is(err, errAddrInUse) {
				t.Fatalf("Start with c2s port taken: got %v, want %v", err, errAddrInUse)
			}
			if took := time.Since(began); took > 5*time.Second {
				t.Errorf("Start noticed the taken port after %v, want quickly", took)
			}
			if s.Pid() != 0 {
				t.Errorf("Pid after a failed Start = %d, want 0", s.Pid())
			}
			l.Close()
			if kind == Ejabberd {
				// The HTTP API's port too (Server.APIURL).
				if l, err = net.Listen("tcp", s.apiAddr()); err != nil {
					t.Fatalf("occupy %s: %v", s.apiAddr(), err)
				}
				if err := s.Start(); !errors.Is(err, errAddrInUse) {
					t.Fatalf("Start with the API port taken: got %v, want %v", err, errAddrInUse)
				}
				l.Close()
			}
			if err := s.Start(); err != nil {
				t.Fatalf("Start once the port is free: %v", err)
			}
		})
	}
}

func TestIntegrationProsodyExtraHost(t *testing.T) {
	const other = "other.localhost"
	s := StartProsody(t, WithHost(other))
	if len(s.Hosts) != 1 || s.Hosts[0] != other {
		t.Errorf("Hosts = %q, want [%s]", s.Hosts, other)
	}
	if err := s.CreateUsersOn(other, []string{"eve"}, "pw"); err != nil {
		t.Fatalf("CreateUsersOn(%s): %v", other, err)
	}
	if err := s.CreateUsersOn(s.Domain, []string{"frank"}, "pw"); err != nil {
		t.Fatalf("CreateUsersOn(%s): %v", s.Domain, err)
	}
	if err := plainLogin(s.C2SAddr, other, "eve", "pw"); err != nil {
		t.Errorf("login eve@%s: %v", other, err)
	}
	if err := plainLogin(s.C2SAddr, s.Domain, "frank", "pw"); err != nil {
		t.Errorf("login frank@%s: %v", s.Domain, err)
	}
	// Users are per host.
	if err := plainLogin(s.C2SAddr, s.Domain, "eve", "pw"); !errors.Is(err, errAuthFailed) {
		t.Errorf("login eve@%s: got %v, want %v", s.Domain, err, errAuthFailed)
	}
	if err := plainLogin(s.C2SAddr, other, "frank", "pw"); !errors.Is(err, errAuthFailed) {
		t.Errorf("login frank@%s: got %v, want %v", other, err, errAuthFailed)
	}
	// Existing users get the new password there too.
	if err := s.CreateUsersOn(other, []string{"eve"}, "pw2"); err != nil {
		t.Fatalf("CreateUsersOn again: %v", err)
	}
	if err := plainLogin(s.C2SAddr, other, "eve", "pw2"); err != nil {
		t.Errorf("login eve@%s with the new password: %v", other, err)
	}
	if err := s.CreateUsersOn("nowhere.localhost", []string{"x"}, "pw"); err == nil || !strings.Contains(err.Error(), "not a host") {
		t.Errorf("CreateUsersOn an unknown host = %v, want a not-a-host error", err)
	}
	out, err := exec.Command("prosodyctl", "--config", s.ConfigPath, "check", "config").CombinedOutput()
	if err != nil {
		t.Errorf("prosodyctl check config: %v\n%s", err, out)
	}
}

// iq sends the raw <iq/> stanza with the given id on c and returns the type
// and inner XML of the answer with that id.
func iq(t *testing.T, c *componentConn, id, stanza string) (typ, inner string) {
	t.Helper()
	c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprint(c.conn, stanza); err != nil {
		t.Fatalf("send iq %s: %v", id, err)
	}
	for {
		start, err := c.nextElement()
		if err != nil {
			t.Fatalf("read answer to iq %s: %v", id, err)
		}
		var r struct {
			ID    string `xml:"id,attr"`
			Type  string `xml:"type,attr"`
			Inner string `xml:",innerxml"`
		}
		if err := c.dec.DecodeElement(&r, &start); err != nil {
			t.Fatalf("decode answer to iq %s: %v", id, err)
		}
		if start.Name.Local == "iq" && r.ID == id {
			return r.Type, r.Inner
		}
	}
}

func TestIntegrationProsodyHarness(t *testing.T) {
	s := StartProsody(t)
	haddr, name, secret := s.Harness()
	if name == "" || secret == "" || name == s.Component {
		t.Fatalf("Harness() = %q, %q: want a name other than the component's and a secret", name, secret)
	}
	if got, cond := rawHandshake(t, haddr, name, secret); got != "handshake" {
		t.Fatalf("handshake as %s: got <%s/> %s", name, got, cond)
	}
	if n := adminCommandCountAs(t, s, name, secret); n < 5 {
		t.Errorf("%s sees %d admin commands, want the XEP-0133 set (8 on Prosody)", name, n)
	}

	// The use it is for: publish a fake item into a node the component owns.
	comp, err := dialComponent(s.ComponentAddr, s.Component, s.Secret, 10*time.Second)
	if err != nil {
		t.Fatalf("connect component: %v", err)
	}
	defer comp.close()
	const node = "test/ghosts"
	if typ, inner := iq(t, comp, "c1", fmt.Sprintf("<iq type='set' id='c1' to='%s'>"+
		"<pubsub xmlns='http://jabber.org/protocol/pubsub'><create node='%s'/></pubsub></iq>", s.Pubsub, node)); typ != "result" {
		t.Fatalf("component creates %s: %s %s", node, typ, inner)
	}
	h, err := dialComponent(haddr, name, secret, 10*time.Second)
	if err != nil {
		t.Fatalf("connect as the harness: %v", err)
	}
	if typ, inner := iq(t, h, "p1", fmt.Sprintf("<iq type='set' id='p1' to='%s'>"+
		"<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='%s'><item id='ghost@localhost/x'>"+
		"<ghost xmlns='urn:test'/></item></publish></pubsub></iq>", s.Pubsub, node)); typ != "result" {
		t.Errorf("harness publishes into the component's node: %s %s", typ, inner)
	}
	// One connection per component name: CreateUsers fails while a test holds it.
	if err := s.CreateUsers([]string{"x"}, "pw"); err == nil {
		t.Errorf("CreateUsers while a test holds the harness connection succeeded, want an error")
	}
	h.close()
	typ, inner := iq(t, comp, "i1", fmt.Sprintf("<iq type='get' id='i1' to='%s'>"+
		"<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='%s'/></pubsub></iq>", s.Pubsub, node))
	if typ != "result" || !strings.Contains(inner, "ghost@localhost/x") {
		t.Errorf("component reads %s: %s %s, want the harness's item", node, typ, inner)
	}
	// Prosody may take a moment to forget the closed harness stream.
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := s.CreateUsers([]string{"x"}, "pw")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CreateUsers after the test let go of the harness: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePorts returns two distinct ports that were free on 127.0.0.1 a moment ago.
func freePorts(t *testing.T) (int, int) {
	t.Helper()
	var ports []int
	for range 2 {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports[0], ports[1]
}

func TestIntegrationProsodyNew(t *testing.T) {
	if _, err := exec.LookPath("prosody"); err != nil {
		if os.Getenv(RequireServersEnv) == "1" {
			t.Fatalf("prosody is not installed and %s=1", RequireServersEnv)
		}
		t.Skip("prosody is not installed (run scripts/install-servers.sh)")
	}
	dir := filepath.Join(tempDir(t), "dev")
	c2s, comp := freePorts(t)
	s, err := New(Prosody, dir, WithPorts(c2s, comp), WithComponent("pubpresence.localhost", "dev-secret"))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Stop() })
	if s.Dir != dir {
		t.Errorf("Dir = %s, want %s", s.Dir, dir)
	}
	if want := "127.0.0.1:" + strconv.Itoa(c2s); s.C2SAddr != want {
		t.Errorf("C2SAddr = %s, want %s", s.C2SAddr, want)
	}
	if want := "127.0.0.1:" + strconv.Itoa(comp); s.ComponentAddr != want {
		t.Errorf("ComponentAddr = %s, want %s", s.ComponentAddr, want)
	}
	if _, err := os.Stat(s.ConfigPath); err != nil {
		t.Errorf("New wrote no config: %v", err)
	}
	if s.Pid() != 0 {
		t.Errorf("Pid after New = %d, want 0: New must not start the server", s.Pid())
	}
	select {
	case <-s.Done():
	default:
		t.Errorf("Done() of a server not started is not closed")
	}

	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v\n%s", err, s.LogTail(20))
	}
	done := s.Done()
	if err := s.CreateUsers([]string{"alice"}, "alice"); err != nil {
		t.Fatalf("CreateUsers: %v", err)
	}
	if err := plainLogin(s.C2SAddr, s.Domain, "alice", "alice"); err != nil {
		t.Errorf("login: %v", err)
	}
	if got, cond := rawHandshake(t, s.ComponentAddr, s.Component, "dev-secret"); got != "handshake" {
		t.Errorf("component handshake: got <%s/> %s", got, cond)
	}
	select {
	case <-done:
		t.Fatalf("Done() closed while the server runs")
	default:
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	select {
	case <-done:
	default:
		t.Errorf("Done() not closed after Stop")
	}

	// A new Server on the same dir and ports finds the data.
	s2, err := New(Prosody, dir, WithPorts(c2s, comp), WithComponent("pubpresence.localhost", "dev-secret"))
	if err != nil {
		t.Fatalf("New again: %v", err)
	}
	t.Cleanup(func() { s2.Stop() })
	if err := s2.Start(); err != nil {
		t.Fatalf("Start again: %v\n%s", err, s2.LogTail(20))
	}
	if err := plainLogin(s2.C2SAddr, s2.Domain, "alice", "alice"); err != nil {
		t.Errorf("login after New again on the same dir: %v", err)
	}

	// A fixed port that is taken is an error, not a retry elsewhere.
	s3, err := New(Prosody, filepath.Join(tempDir(t), "taken"), WithPorts(c2s, comp))
	if err != nil {
		t.Fatalf("New on taken ports: %v", err)
	}
	if err := s3.Start(); err == nil {
		s3.Stop()
		t.Errorf("Start on ports another server holds succeeded")
	}

	// A server that dies on its own closes Done, and Stop says so.
	done = s2.Done()
	if err := syscall.Kill(s2.Pid(), syscall.SIGKILL); err != nil {
		t.Fatalf("kill prosody: %v", err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("Done() not closed 10 s after the server was killed")
	}
	if err := s2.Stop(); err == nil || !strings.Contains(err.Error(), "exited on its own") {
		t.Errorf("Stop after the server died = %v, want an exited-on-its-own error", err)
	}
}

func TestIntegrationProsodyWithPorts(t *testing.T) {
	c2s, comp := freePorts(t)
	s := StartProsody(t, WithPorts(c2s, comp))
	if s.C2SAddr != "127.0.0.1:"+strconv.Itoa(c2s) || s.ComponentAddr != "127.0.0.1:"+strconv.Itoa(comp) {
		t.Errorf("addresses %s %s, want ports %d and %d", s.C2SAddr, s.ComponentAddr, c2s, comp)
	}
	if got, cond := rawHandshake(t, s.ComponentAddr, s.Component, s.Secret); got != "handshake" {
		t.Errorf("handshake: got <%s/> %s", got, cond)
	}
	if s.C2SAddr6 != "" && s.C2SAddr6 != "[::1]:"+strconv.Itoa(c2s) {
		t.Errorf("C2SAddr6 = %s, want port %d", s.C2SAddr6, c2s)
	}
	if err := s.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if s.C2SAddr != "127.0.0.1:"+strconv.Itoa(c2s) {
		t.Errorf("C2SAddr after Restart = %s", s.C2SAddr)
	}
}
