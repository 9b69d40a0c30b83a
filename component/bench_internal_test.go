package component

import (
	"bytes"
	"io"
	"strconv"
	"testing"

	"github.com/pubpresence/pubpresence/internal/xmpp"
)

// benchStream returns the stream header the benchmarks read after, and n
// stanzas as the servers send them to the component: presences (Prosody
// style, single quotes; ejabberd style, double quotes and xml:lang) and the
// IQ results of pubsub publications, alternating.
func benchStream(n int) (header string, body []byte) {
	header = "<?xml version='1.0'?><stream:stream id='419a06b9' xmlns='jabber:component:accept' " +
		"xmlns:stream='http://etherx.jabber.org/streams' xml:lang='en' from='pubpresence.localhost'>"
	var b []byte
	for i := range n {
		u := "u" + strconv.Itoa(100000+i%1000) + "@localhost/r"
		switch i % 4 {
		case 0:
			b = append(b, "<presence to='pubpresence.localhost' from='"+u+"'><show>away</show><status>out to lunch &amp; back at 2</status><priority>5</priority></presence>"...)
		case 1:
			b = append(b, "<iq to='pubpresence.localhost' id='ab12cd34ef56.lx1fz3k0-"+strconv.FormatUint(uint64(i), 36)+"' from='pubsub.localhost' type='result'/>"...)
		case 2:
			b = append(b, `<presence xml:lang="en" to="pubpresence.localhost" from="`+u+`"><priority>-1</priority><show>dnd</show><status>busy here</status></presence>`...)
		case 3:
			b = append(b, `<iq to="pubpresence.localhost" from="pubsub.localhost" type="result" id="ab12cd34ef56.lx1fz3k0-`+strconv.FormatUint(uint64(i), 36)+`"><pubsub xmlns="http://jabber.org/protocol/pubsub"><publish node="presence/live"><item id="`+u+`"/></publish></pubsub></iq>`...)
		}
	}
	return header, b
}

// newTestReader returns a reader of data, a stream header and what follows,
// positioned after the header as Dial leaves it; fast false reads
// everything with encoding/xml, as the reader did before the fast path.
func newTestReader(tb testing.TB, src io.Reader, fast bool) *xmpp.Reader {
	r := xmpp.NewReader(src)
	if _, err := r.Header(); err != nil {
		tb.Fatalf("stream header: %v", err)
	}
	r.Self = "pubpresence.localhost"
	r.NoFast = !fast
	return r
}

// BenchmarkReadStanza reads realistic stanzas from a buffer as readLoop
// does, through the core's Reader (internal/xmpp has the reader's own
// tests); one op is one stanza. slow is encoding/xml for every stanza, as
// before issue 6.
func BenchmarkReadStanza(b *testing.B) {
	const n = 1000
	header, body := benchStream(n)
	data := append([]byte(header), body...)
	for _, mode := range []struct {
		name string
		fast bool
	}{{"fast", true}, {"slow", false}} {
		b.Run(mode.name, func(b *testing.B) {
			b.SetBytes(int64(len(body) / n))
			b.ReportAllocs()
			b.ResetTimer()
			got := 0
			for i := 0; i < b.N; i += n {
				b.StopTimer()
				r := newTestReader(b, bytes.NewReader(data), mode.fast)
				b.StartTimer()
				var el xmpp.Element
				for r.Next(&el) == nil {
					if s := stanzaOf(&el); s.Name != "" {
						got++
					}
				}
			}
			if got < b.N {
				b.Fatalf("read %d stanzas, want %d", got, b.N)
			}
		})
	}
}
