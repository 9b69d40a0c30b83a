package load

import (
	"strings"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/internal/c2s"
)

func TestCheckLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:5222", true},
		{"127.3.4.5:5222", true},
		{"[::1]:5222", true},
		{"localhost:5222", true},
		{"10.0.0.1:5222", false},
		{"example.org:5222", false},
		{"[2001:db8::1]:5222", false},
		{"127.0.0.1", false}, // no port
	} {
		err := CheckLoopback(tc.addr)
		if (err == nil) != tc.ok {
			t.Errorf("CheckLoopback(%q) = %v, want ok=%v", tc.addr, err, tc.ok)
		}
	}
}

func TestNewRunBounds(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  RunConfig
		want string // error substring; "" for none
		size int
	}{
		{"rate and duration", RunConfig{Rate: 100, Duration: 10 * time.Second}, "", 1001},
		{"changes cap the duration", RunConfig{Rate: 100, Duration: 10 * time.Second, Changes: 50}, "", 50},
		{"as fast as possible", RunConfig{Changes: 500}, "", 500},
		{"never ends", RunConfig{Rate: 10}, "would not end", 0},
		{"fast without a count", RunConfig{Duration: time.Second}, "needs a number of changes", 0},
		{"negative rate", RunConfig{Rate: -1, Changes: 1}, "rate", 0},
		{"too long", RunConfig{Rate: 1, Duration: 2 * MaxDuration}, "duration", 0},
		{"too many", RunConfig{Rate: 1e6, Duration: time.Hour}, "at most", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewRun(tc.cfg)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want one with %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.max != tc.size {
				t.Errorf("size %d, want %d", r.max, tc.size)
			}
		})
	}
}

// TestObserverRecords feeds an observer stanzas as a live event and a
// contact's presence carry the marker, and checks what the report says.
func TestObserverRecords(t *testing.T) {
	r, err := NewRun(RunConfig{Changes: 6})
	if err != nil {
		t.Fatal(err)
	}
	rec := &observer{name: "live", run: r, recv: make([]int64, r.max), users: 2, last: make([]int, 2)}
	r.observers = append(r.observers, rec)
	for seq := range 6 {
		r.at[seq].Store(int64(seq+1) * int64(time.Millisecond))
	}
	event := func(seq int) []byte {
		return []byte(`<message from='pubsub.localhost'><event xmlns='http://jabber.org/protocol/pubsub#event'><items node='presence/live'><item id='u@l/r'><user xmlns='urn:pubpresence:0' status='away'><text>` +
			r.Marker(seq) + `</text></user></item></items></event></message>`)
	}
	// Change 1 (user 1) arrives after change 3 (user 1): a reorder.
	// Change 2 arrives twice. Change 5 never arrives. A marker of
	// another run and a marker with no digits are ignored.
	r.base = time.Now().Add(-10 * time.Millisecond)
	for _, seq := range []int{0, 3, 1, 2, 2, 4} {
		rec.scan(event(seq))
	}
	rec.scan([]byte(`<presence><status>ld00000000#3</status></presence>`))
	rec.scan([]byte(`<presence><status>` + string(r.tag) + `x</status></presence>`))
	rep := r.report(6, time.Second)
	s, ok := rep.Stream("live")
	if !ok {
		t.Fatal("no live stream")
	}
	if s.Received != 5 || s.Lost != 1 || s.Duplicates != 1 || s.Reordered != 1 {
		t.Errorf("received %d lost %d dup %d reordered %d, want 5 1 1 1", s.Received, s.Lost, s.Duplicates, s.Reordered)
	}
	if s.P50 <= 0 || s.P50 > s.P99 || s.P99 > s.Max {
		t.Errorf("latencies p50 %v p99 %v max %v: not ordered", s.P50, s.P99, s.Max)
	}
	if !strings.Contains(rep.String(), "received 5 lost 1 dup 1 reordered 1") {
		t.Errorf("report:\n%s", rep)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	for _, tc := range []struct{ p, want int }{{50, 50}, {90, 90}, {99, 99}, {100, 100}, {1, 1}} {
		if got := pct(d, tc.p); got != time.Duration(tc.want) {
			t.Errorf("pct(%d) = %v, want %d", tc.p, got, tc.want)
		}
	}
	if got := pct(d[:1], 99); got != 1 {
		t.Errorf("pct of one = %v", got)
	}
}

func TestNames(t *testing.T) {
	n := Names("u", 1001)
	if n[0] != "u000" || n[999] != "u999" || n[1000] != "u1000" {
		t.Errorf("names %q %q %q", n[0], n[999], n[1000])
	}
}

func TestJoin(t *testing.T) {
	a := &Fleet{clients: []*c2s.Client{nil, nil}}
	b := &Fleet{clients: []*c2s.Client{nil}}
	j := Join(a, b)
	if j.Len() != 3 || j.Client(2) != b.clients[0] {
		t.Fatalf("joined fleet has %d sessions, want 3 in order", j.Len())
	}
	a.wg.Add(1)
	done := make(chan struct{})
	go func() { j.Abort(); close(done) }()
	select {
	case <-done:
		t.Fatal("Abort returned while a part's reader runs")
	case <-time.After(50 * time.Millisecond):
	}
	a.wg.Done()
	<-done
}
