package component_test

import (
	"context"
	"testing"

	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/internal/xmpptest"
)

// BenchmarkStart measures what starting one IQ request costs the caller:
// the server reads and discards, and every Call is given up at once.
func BenchmarkStart(b *testing.B) {
	srv := newFakeServerWith(b, xmpptest.Config{Mode: xmpptest.ModeDiscard})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := component.Dial(ctx, config(srv))
	if err != nil {
		b.Fatalf("Dial: %v", err)
	}
	gone, stop := context.WithCancel(context.Background())
	stop()
	payload := []byte("<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='presence/live'>" +
		"<item id='u100042@localhost/r'><presence xmlns='urn:pubpresence:0' jid='u100042@localhost/r' show='away'/></item></publish></pubsub>")
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		call, err := c.Start(ctx, "set", "pubsub.localhost", payload)
		if err != nil {
			b.Fatalf("Start: %v", err)
		}
		_, _ = call.Wait(gone)
	}
	b.StopTimer()
	_ = c.Close()
}
