package component_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/internal/xmpptest"
)

// TestWriteWaitsWhileServerSends: the server leaves the component's socket
// unread for longer than WriteTimeout while it keeps sending (a server busy
// with a storm of clients); the stream stays up and its writes go through
// once the server reads again. A server that neither reads nor sends ends
// the stream after about WriteTimeout.
func TestWriteWaitsWhileServerSends(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sends bool // the server keeps sending while it does not read
	}{{"busy server", true}, {"silent server", false}} {
		t.Run(tc.name, func(t *testing.T) {
			const writeTimeout, stall = 100 * time.Millisecond, time.Second
			read := make(chan struct{})
			srv := newFakeServerWith(t, xmpptest.Config{Script: func(c *xmpptest.Conn) {
				end := time.Now().Add(stall)
				for time.Now().Before(end) {
					if tc.sends {
						if err := c.Write("<presence from='u@localhost/r' to='" + compName + "'/>"); err != nil {
							return
						}
					}
					time.Sleep(10 * time.Millisecond)
				}
				close(read)
				_, _ = io.Copy(io.Discard, c.NetConn())
			}})
			cfg := config(srv)
			cfg.WriteTimeout = writeTimeout
			c, err := component.Dial(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			go func() {
				for range c.Inbound() {
				}
			}()
			// More than the socket buffers hold: the writer blocks.
			big := []byte("<message to='x@localhost'><body>" + strings.Repeat("x", 64<<10) + "</body></message>")
			sent := make(chan error, 1)
			go func() {
				for range 200 {
					if err := c.Send(context.Background(), big); err != nil {
						sent <- err
						return
					}
				}
				sent <- nil
			}()
			select {
			case <-read:
			case <-time.After(wait):
				t.Fatal("the server's script did not end its stall")
			}
			if tc.sends {
				select {
				case <-c.Done():
					t.Fatalf("the stream ended while the server was sending: %v", c.Err())
				default:
				}
				if err := <-sent; err != nil {
					t.Fatalf("send: %v", err)
				}
				if n := c.Stats().WriteWaits; n == 0 {
					t.Error("no write waited: the socket never filled, the test shows nothing")
				}
				return
			}
			select {
			case <-c.Done():
				if err := c.Err(); err == nil || !strings.Contains(err.Error(), "write") {
					t.Errorf("stream ended with %v, want a write timeout", err)
				}
			default:
				t.Fatal("the stream to a server that neither reads nor sends is still up after the stall")
			}
		})
	}
}
