package feed

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/nodes"
	"github.com/pubpresence/pubpresence/presence"
)

// client is what a reader of the event stream holds: it applies frames as
// docs/http.md says.
type client struct {
	t       *testing.T
	conns   map[string]presence.Conn
	last    uint64 // Last-Event-ID
	service string
	snaps   int
	changes int
}

func newClient(t *testing.T) *client { return &client{t: t, conns: map[string]presence.Conn{}} }

// apply reads the frames in out.
func (c *client) apply(out []byte) {
	c.t.Helper()
	text := string(out)
	if text != "" && !strings.HasSuffix(text, "\n\n") {
		c.t.Fatalf("output does not end with a blank line: %q", text)
	}
	for _, fr := range strings.Split(strings.TrimSuffix(text, "\n\n"), "\n\n") {
		if fr == "" {
			continue
		}
		var id, event, data string
		for _, line := range strings.Split(fr, "\n") {
			k, v, ok := strings.Cut(line, ": ")
			if !ok {
				c.t.Fatalf("line %q", line)
			}
			switch k {
			case "id":
				id = v
			case "event":
				event = v
			case "data":
				data = v
			default:
				c.t.Fatalf("field %q", k)
			}
		}
		if id != "" {
			n, err := strconv.ParseUint(id, 10, 64)
			if err != nil {
				c.t.Fatal(err)
			}
			if event == "change" && n != c.last+1 {
				c.t.Fatalf("change %d after %d", n, c.last)
			}
			c.last = n
		}
		switch event {
		case "snapshot":
			var s struct {
				Service     string            `json:"service"`
				Seq         uint64            `json:"seq"`
				Connections []json.RawMessage `json:"connections"`
			}
			if err := json.Unmarshal([]byte(data), &s); err != nil {
				c.t.Fatalf("snapshot %s: %v", data, err)
			}
			if s.Seq != c.last {
				c.t.Fatalf("snapshot seq %d, id %d", s.Seq, c.last)
			}
			c.service = s.Service
			c.conns = map[string]presence.Conn{}
			for _, raw := range s.Connections {
				conn, err := nodes.ParseJSON(raw)
				if err != nil {
					c.t.Fatal(err)
				}
				c.conns[conn.JID] = conn
			}
			c.snaps++
		case "change":
			conn, err := nodes.ParseJSON([]byte(data))
			if err != nil {
				c.t.Fatal(err)
			}
			if conn.Show == presence.Offline {
				if _, ok := c.conns[conn.JID]; !ok {
					c.t.Fatalf("offline for %s, which the client does not hold", conn.JID)
				}
				delete(c.conns, conn.JID)
			} else {
				c.conns[conn.JID] = conn
			}
			c.changes++
		case "service":
			var s struct{ Service string }
			if err := json.Unmarshal([]byte(data), &s); err != nil {
				c.t.Fatal(err)
			}
			c.service = s.Service
		default:
			c.t.Fatalf("event %q", event)
		}
	}
}

// same fails unless the client holds snapshot s exactly.
func (c *client) same(s Snapshot) {
	c.t.Helper()
	if c.service != s.Service || c.last != s.Seq {
		c.t.Fatalf("client at %s/%d, feed at %s/%d", c.service, c.last, s.Service, s.Seq)
	}
	if len(c.conns) != len(s.Conns) {
		c.t.Fatalf("client holds %d connections, feed %d", len(c.conns), len(s.Conns))
	}
	for _, want := range s.Conns {
		got := c.conns[want.JID]
		if !got.SameState(want) || !got.Since.Equal(want.Since) {
			c.t.Fatalf("client %+v, feed %+v", got, want)
		}
	}
}

var t0 = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

// step makes one random change to f.
func step(f *Feed, r *rand.Rand, i int) {
	jid := fmt.Sprintf("u%d@example.org/r%d", r.IntN(8), r.IntN(3))
	switch n := r.IntN(20); {
	case n < 12:
		shows := []presence.Show{presence.Online, presence.Away, presence.DND, presence.Chat, presence.XA}
		f.Set(presence.Conn{JID: jid, Show: shows[r.IntN(len(shows))], Text: "t" + strconv.Itoa(r.IntN(3)),
			Priority: r.IntN(5), IP: "192.0.2.1", Since: t0.Add(time.Duration(i) * time.Second)})
	case n < 18:
		f.Gone(presence.Conn{JID: jid, Since: t0.Add(time.Duration(i) * time.Second)})
	case n < 19:
		f.SetPhase([]string{Init, Online}[r.IntN(2)])
	default:
		f.Hide(jid)
	}
}

func TestFeedStreamsHoldTheState(t *testing.T) {
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 1))
		f := New(Config{History: 16, WithIP: true, Coalesce: -1, Start: 100})
		subs := make([]*Sub, 3)
		clients := make([]*client, 3)
		for i := range subs {
			subs[i], _ = f.Follow(0, false)
			clients[i] = newClient(t)
		}
		var b []byte
		for i := range 400 {
			step(f, r, i)
			for k, s := range subs {
				if r.IntN(k+1) != 0 { // later subs read less often: they fall behind
					continue
				}
				var batch Batch
				b, batch = nextAll(s, b[:0])
				clients[k].apply(b)
				clients[k].same(f.Snapshot())
				if batch.Wake == nil {
					t.Fatal("no wake channel")
				}
			}
		}
		if clients[2].snaps < 2 {
			t.Errorf("seed %d: the slow client was sent %d snapshots; it never fell behind", seed, clients[2].snaps)
		}
	}
}

func TestFeedResume(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	f := New(Config{History: 64, WithIP: true, Coalesce: -1, Start: 1000})
	s, _ := f.Follow(0, false)
	c := newClient(t)
	var b []byte
	resumed, fresh := 0, 0
	for i := range 2000 {
		step(f, r, i)
		if r.IntN(5) == 0 {
			b, _ = nextAll(s, b[:0])
			c.apply(b)
			c.same(f.Snapshot())
		}
		if r.IntN(40) == 0 { // the connection drops; the client comes back with its last id
			var ok bool
			s, ok = f.Follow(c.last, true)
			snaps := c.snaps
			b, _ = nextAll(s, b[:0])
			c.apply(b)
			c.same(f.Snapshot())
			if ok {
				resumed++
				if c.snaps != snaps {
					t.Fatal("a resumed stream sent a snapshot")
				}
			} else {
				fresh++
			}
		}
	}
	if resumed == 0 || fresh == 0 {
		t.Fatalf("resumed %d, fresh %d: want both", resumed, fresh)
	}
}

func TestFeedFollowRules(t *testing.T) {
	f := New(Config{History: 4, Coalesce: -1, Start: 50})
	conn := presence.Conn{JID: "a@example.org/r", Show: presence.Online, IP: "192.0.2.9", Since: t0}
	f.Set(conn) // 51
	if _, ok := f.Follow(50, true); !ok {
		t.Error("Last-Event-ID 50 (the start) not resumed")
	}
	if _, ok := f.Follow(51, true); !ok {
		t.Error("Last-Event-ID 51 (the last change) not resumed")
	}
	for _, last := range []uint64{49, 52, 1 << 60} {
		if _, ok := f.Follow(last, true); ok {
			t.Errorf("Last-Event-ID %d resumed", last)
		}
	}
	for i := range 5 {
		conn.Priority = i + 1
		f.Set(conn) // 52…56
	}
	if _, ok := f.Follow(51, true); ok {
		t.Error("Last-Event-ID 51 resumed after its successors left the ring")
	}
	if _, ok := f.Follow(52, true); !ok {
		t.Error("Last-Event-ID 52 not resumed with 53…56 in the ring")
	}
	f.Hide(conn.JID) // 57
	if _, ok := f.Follow(56, true); ok {
		t.Error("resumed across a reset")
	}
	s, ok := f.Follow(57, true)
	if !ok {
		t.Fatal("the reset's own seq not resumed")
	}
	out, batch := nextAll(s, nil)
	if string(out) != "event: service\ndata: {\"service\":\"init\"}\n\n" || batch.Snapshot != "" {
		t.Errorf("after the reset: %q %+v; want the phase alone", out, batch)
	}
	if f.WithIP() {
		t.Error("WithIP")
	}
	s, _ = f.Follow(0, false)
	f.Set(conn)
	out, _ = nextAll(s, nil)
	if strings.Contains(string(out), "192.0.2.9") {
		t.Errorf("address served without WithIP: %s", out)
	}
}

func TestFeedPhases(t *testing.T) {
	f := New(Config{Coalesce: -1, Start: 10})
	s, _ := f.Follow(0, false)
	out, batch := nextAll(s, nil)
	if batch.Snapshot != SnapStart || !strings.Contains(string(out), `{"service":"init","partial":true,"seq":10,"connections":[]}`) {
		t.Fatalf("first: %q %+v", out, batch)
	}
	wake := batch.Wake
	f.SetPhase(Online)
	select {
	case <-wake:
	default:
		t.Fatal("a phase change did not wake the stream")
	}
	out, batch = nextAll(s, nil)
	if string(out) != "event: service\ndata: {\"service\":\"online\"}\n\n" || batch.Standby {
		t.Fatalf("phase: %q %+v", out, batch)
	}
	f.SetPhase(Online)
	if out, _ = nextAll(s, nil); len(out) != 0 {
		t.Fatalf("the same phase again: %q", out)
	}
	// A client that saw change 10 and the phase after it gets the phase
	// again on resume: phases are idempotent.
	s2, ok := f.Follow(10, true)
	if out, _ = nextAll(s2, nil); !ok || !strings.Contains(string(out), "online") {
		t.Fatalf("resume at 10: %v %q", ok, out)
	}
	f.SetPhase(Standby)
	if _, batch = nextAll(s, nil); !batch.Standby {
		t.Fatal("standby not reported")
	}
	f.Close()
	if _, batch = nextAll(s, nil); !batch.Closed || batch.Wake != nil {
		t.Fatalf("after Close: %+v", batch)
	}
}

// TestFeedStandbyThenOnline: a stream whose batch holds standby then
// online (a client resuming from before both, or a quick flip) is not
// ended: the service is online. Ending it made a resuming client loop,
// reconnecting every retry to be sent the same two phases and closed again,
// until a change moved its Last-Event-ID past them.
func TestFeedStandbyThenOnline(t *testing.T) {
	f := New(Config{Coalesce: -1, Start: 10})
	defer f.Close()
	f.SetPhase(Online)
	f.Set(presence.Conn{JID: "a@example.org/r", Show: presence.Online})
	f.SetPhase(Standby)
	f.SetPhase(Online)
	s, ok := f.Follow(11, true)
	if !ok {
		t.Fatal("resume at 11 refused")
	}
	out, batch := s.Next(nil)
	if batch.Standby || !strings.HasSuffix(string(out), "event: service\ndata: {\"service\":\"online\"}\n\n") {
		t.Fatalf("standby then online: %q %+v", out, batch)
	}
	// The other way round the stream ends.
	f.SetPhase(Standby)
	if _, batch = s.Next(nil); !batch.Standby {
		t.Fatal("online then standby: not reported")
	}
	f.SetPhase(Online)
	f.SetPhase(Standby)
	s2, _ := f.Follow(11, true)
	if _, batch = s2.Next(nil); !batch.Standby {
		t.Fatal("standby, online, standby, online, standby: not reported")
	}
}

func TestFeedCoalesces(t *testing.T) {
	f := New(Config{Coalesce: 20 * time.Millisecond, Start: 1})
	defer f.Close()
	s, _ := f.Follow(0, false)
	_, batch := nextAll(s, nil)
	start := time.Now()
	for i := range 100 {
		f.Set(presence.Conn{JID: "a@example.org/r", Show: presence.Online, Priority: i % 100})
	}
	<-batch.Wake
	if time.Since(start) < 20*time.Millisecond {
		t.Error("woken before the coalescing delay")
	}
	out, batch := nextAll(s, nil)
	if batch.Changes != 100 || strings.Count(string(out), "event: change") != 100 {
		t.Fatalf("%d changes in one batch, want 100", batch.Changes)
	}
}

func TestMostAvailable(t *testing.T) {
	c := func(show presence.Show, prio int) presence.Conn { return presence.Conn{Show: show, Priority: prio} }
	for _, tc := range []struct {
		conns []presence.Conn
		want  presence.Show
	}{
		{nil, presence.Offline},
		{[]presence.Conn{c(presence.DND, 10), c(presence.XA, 0)}, presence.XA},
		{[]presence.Conn{c(presence.Away, 0), c(presence.Online, -1)}, presence.Online},
		{[]presence.Conn{c(presence.Online, 0), c(presence.Chat, 0)}, presence.Chat},
	} {
		if got := MostAvailable(tc.conns); got != tc.want {
			t.Errorf("MostAvailable(%v) = %s, want %s", tc.conns, got, tc.want)
		}
	}
}

// TestFeedConcurrent: streams reading while the writer writes (run with
// -race) end holding the state, through chunk boundaries and falls behind.
func TestFeedConcurrent(t *testing.T) {
	f := New(Config{History: 300, WithIP: true, Coalesce: time.Millisecond, Start: 1})
	defer f.Close()
	const readers = 6
	logs := make([][]byte, readers)
	stop := make(chan struct{})
	done := make(chan int)
	for k := range readers {
		s, _ := f.Follow(0, false)
		go func() {
			var out []byte
			for {
				var batch Batch
				out, batch = nextAll(s, out)
				select {
				case <-batch.Wake:
					if k%3 == 2 {
						time.Sleep(time.Millisecond) // a slow one
					}
				case <-stop:
					out, _ = nextAll(s, out)
					logs[k] = out
					done <- k
					return
				}
			}
		}()
	}
	r := rand.New(rand.NewPCG(3, 3))
	for i := range 5000 {
		step(f, r, i)
		if i%500 == 0 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	close(stop)
	for range readers {
		<-done
	}
	for k := range readers {
		c := newClient(t)
		c.apply(logs[k])
		c.same(f.Snapshot())
	}
	// One encoding of the snapshot serves every asker until the next change.
	seq1, js1 := f.SnapshotJSON()
	seq2, js2 := f.SnapshotJSON()
	if seq1 != seq2 || &js1[0] != &js2[0] {
		t.Error("the snapshot was encoded twice at the same seq")
	}
	f.Set(presence.Conn{JID: "new@example.org/r", Show: presence.Online})
	if seq3, js3 := f.SnapshotJSON(); seq3 != seq1+1 || &js3[0] == &js1[0] {
		t.Error("a stale encoded snapshot was served")
	}
}

// nextAll calls Next until it has nothing more at once.
func nextAll(s *Sub, b []byte) ([]byte, Batch) {
	for {
		var batch Batch
		b, batch = s.Next(b)
		if !batch.More {
			return b, batch
		}
	}
}

// BenchmarkFeedSet is the service loop's cost of one change with the HTTP
// face on: the state's copy updated, the change encoded once, the streams'
// wake scheduled.
//
//	go test -run='^$' -bench=FeedSet -benchmem ./internal/feed/
func BenchmarkFeedSet(b *testing.B) {
	f := New(Config{WithIP: true, Start: 1})
	defer f.Close()
	conns := make([]presence.Conn, 1000)
	for i := range conns {
		conns[i] = presence.Conn{JID: fmt.Sprintf("u%04d@example.org/r", i), Show: presence.Online, Text: "working from home", IP: "192.0.2.1", Priority: 5, Since: t0}
		f.Set(conns[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		c := conns[i%len(conns)]
		c.Show = []presence.Show{presence.Away, presence.DND}[(i/len(conns))%2]
		f.Set(c)
	}
}
