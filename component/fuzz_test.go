package component_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/internal/xmpptest"
)

// FuzzInbound feeds arbitrary bytes to an authenticated stream, then drops
// the connection: the Conn must not panic and must end.
func FuzzInbound(f *testing.F) {
	to := " to='" + compName + "'"
	for _, s := range []string{
		"<presence from='bob@localhost/r1'" + to + "><priority>999</priority><show>bogus</show></presence>",
		"  <message from='a@localhost'" + to + " type='chat'><body>hi &amp; bye</body></message>\n",
		"<iq type='get' id='1' from='localhost'" + to + "><ping xmlns='urn:xmpp:ping'/></iq>",
		"<iq type='get' id='2' from='localhost'" + to + "><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
		"<iq type='result' id='nope' from='localhost'" + to + "/>",
		"<iq type='set' id='3'" + to + "/>",
		xmpptest.StreamError("conflict", "x"),
		"<stream:error><bogus/></stream:error>",
		"</stream:stream>",
		"<presence><unclosed></presence>",
		"<presence from='&bogus;'/>",
		"<a:b xmlns:a='urn:x'/><c/>",
		"<?pi x?><!-- c --><presence/>",
		"<!DOCTYPE x [<!ENTITY a 'b'>]><presence/>",
		"\x00\xff",
	} {
		f.Add([]byte(s))
	}
	srv := newFakeServer(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		c, err := component.Dial(ctx, config(srv))
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		defer c.Close()
		sc := srv.Conn(t)
		_ = sc.Write(string(data))
		sc.Close()
		timeout := time.After(wait)
		for {
			select {
			case <-c.Inbound():
				continue
			case <-c.Done():
			case <-timeout:
				t.Fatalf("the Conn did not end after EOF (input %q)", data)
			}
			break
		}
		if c.Err() == nil {
			t.Fatal("Done closed with a nil Err()")
		}
	})
}

// FuzzHandshake plays a server that answers the stream open with arbitrary
// bytes and then closes its side: Dial must return, and succeed only when
// the server sent a <handshake/>; a Conn it returns must then end.
func FuzzHandshake(f *testing.F) {
	const (
		prosodyHeader  = "<?xml version='1.0'?><stream:stream id='419a06b9-1779-4949-913e-439a188adfb5' xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' xml:lang='en' from='pubpresence.localhost'>"
		ejabberdHeader = `<?xml version='1.0'?><stream:stream id="9093610124340968785" xml:lang="en" xmlns:stream="http://etherx.jabber.org/streams" from="pubpresence.localhost" xmlns="jabber:component:accept">`
	)
	for _, s := range []string{
		prosodyHeader + "<handshake/>",
		ejabberdHeader + "<handshake/>",
		prosodyHeader + "<handshake/><presence from='bob@localhost/r1' to='pubpresence.localhost'/></stream:stream>",
		prosodyHeader + xmpptest.StreamError("not-authorized", "Given token does not match calculated token") + "</stream:stream>",
		"<?xml version='1.0'?><stream:stream id='' version='1.0' xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'>" +
			xmpptest.StreamError("host-unknown", "nosuch.localhost does not match any configured external components") + "</stream:stream>",
		ejabberdHeader + xmpptest.StreamError("conflict", "Component already connected"),
		prosodyHeader + "<iq type='get' id='1'/>",
		prosodyHeader,
		"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' id='x'></stream:stream>",
		"HTTP/1.1 400 Bad Request\r\n\r\n",
		"",
	} {
		f.Add([]byte(s))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatalf("listen: %v", err)
	}
	f.Cleanup(func() { _ = ln.Close() })
	f.Fuzz(func(t *testing.T, data []byte) {
		served := make(chan struct{})
		go func() {
			defer close(served)
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			defer nc.Close()
			_, _ = nc.Write(data)
			_ = nc.(*net.TCPConn).CloseWrite()
			_ = nc.SetReadDeadline(time.Now().Add(wait))
			_, _ = io.Copy(io.Discard, nc) // until the client closes
		}()
		cfg := component.Config{Address: ln.Addr().String(), Name: compName, Secret: compSecret, DialTimeout: wait}
		start := time.Now()
		c, err := component.Dial(context.Background(), cfg)
		if time.Since(start) >= wait {
			t.Fatalf("Dial took %v on input %q", time.Since(start), data)
		}
		if err == nil {
			if !bytes.Contains(data, []byte("handshake")) {
				_ = c.Close()
				t.Fatalf("Dial succeeded without a <handshake/> in %q", data)
			}
			select {
			case <-c.Done():
			case <-time.After(wait):
				t.Fatalf("the Conn did not end after EOF (input %q)", data)
			}
			if c.Err() == nil {
				t.Fatal("Done closed with a nil Err()")
			}
			_ = c.Close()
		}
		<-served
	})
}
