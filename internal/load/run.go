package load

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pubpresence/pubpresence/internal/c2s"
)

// RunConfig says how fast and for how long the fleet changes presence.
type RunConfig struct {
	// Rate is the number of presence changes per second over the whole
	// fleet, spread over the users in turn; 0 sends as fast as the
	// connections take them.
	Rate float64
	// Duration bounds the sending time; Changes bounds the number of
	// changes. At least one must be set; the run stops at the first
	// reached.
	Duration time.Duration
	Changes  int
	// Drain is how long to wait after the last change for the observers
	// to receive what is still on its way; default 10s.
	Drain time.Duration
}

// Run is one load run: the changes it sends, and what its observers
// received. Each change is a presence whose status text carries a marker
// unique to the run and the change, "<tag>#<seq>", so an observer can tell
// which change a stanza reports, whatever form the stanza takes (a
// presence, a pubsub event).
type Run struct {
	cfg  RunConfig
	tag  []byte // "<tag>#"
	base time.Time
	max  int

	sent atomic.Int64 // changes sent so far
	at   []atomic.Int64

	mu        sync.Mutex
	observers []*observer
}

// NewRun checks cfg and prepares a run.
func NewRun(cfg RunConfig) (*Run, error) {
	if cfg.Rate < 0 || cfg.Rate > 1e6 {
		return nil, fmt.Errorf("rate %v: want 0 (as fast as possible) to 1e6 per second", cfg.Rate)
	}
	if cfg.Duration < 0 || cfg.Duration > MaxDuration {
		return nil, fmt.Errorf("duration %v: want at most %v", cfg.Duration, MaxDuration)
	}
	if cfg.Changes < 0 || cfg.Changes > MaxChanges {
		return nil, fmt.Errorf("changes %d: want at most %d", cfg.Changes, MaxChanges)
	}
	if cfg.Duration == 0 && cfg.Changes == 0 {
		return nil, fmt.Errorf("neither a duration nor a number of changes: the run would not end")
	}
	if cfg.Drain <= 0 {
		cfg.Drain = 10 * time.Second
	}
	// The sequence space is allocated up front (8 bytes per change per
	// observer): as fast as possible needs a number of changes.
	size := cfg.Changes
	if cfg.Rate > 0 && cfg.Duration > 0 {
		if n := int(cfg.Rate*cfg.Duration.Seconds()) + 1; size == 0 || n < size {
			size = n
		}
	}
	if size == 0 {
		return nil, fmt.Errorf("rate 0 (as fast as possible) needs a number of changes")
	}
	if size > MaxChanges {
		return nil, fmt.Errorf("rate × duration = %d changes: want at most %d", size, MaxChanges)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return &Run{cfg: cfg, tag: []byte("ld" + hex.EncodeToString(b[:]) + "#"), max: size,
		at: make([]atomic.Int64, size), base: time.Now()}, nil
}

// Marker returns the status text of change seq.
func (r *Run) Marker(seq int) string { return fmt.Sprintf("%s%d", r.tag, seq) }

// Observer reads one session's stanzas for as long as it lasts and hands
// those that carry a change's marker to the run it is attached to
// (Run.Observe); the rest are dropped. One observer serves run after run.
type Observer struct {
	name string
	cur  atomic.Pointer[observer]
}

// NewObserver starts reading the stanzas of cl and more, under name: a
// change counts once it reached any of them (each user's changes should
// reach one of them only, as with contacts of FleetConfig.Contacts).
func NewObserver(name string, cl *c2s.Client, more ...*c2s.Client) *Observer {
	o := &Observer{name: name}
	for _, c := range append([]*c2s.Client{cl}, more...) {
		go o.read(c.Stanzas())
	}
	return o
}

func (o *Observer) read(stanzas <-chan c2s.Stanza) {
	for st := range stanzas {
		if rec := o.cur.Load(); rec != nil {
			rec.scan(st.Raw)
		}
	}
}

// Observe attaches o to r: from now on o records r's changes, and no
// longer those of the run it served before.
func (r *Run) Observe(o *Observer) {
	rec := &observer{name: o.name, run: r, recv: make([]int64, r.max)}
	r.mu.Lock()
	r.observers = append(r.observers, rec)
	r.mu.Unlock()
	o.cur.Store(rec)
}

// observer records when each change of one run reached one session.
type observer struct {
	name string
	run  *Run

	mu       sync.Mutex
	recv     []int64 // nanoseconds since run.base; 0 when not received
	count    int
	dups     int
	reorders int
	last     []int // per user index: the last seq seen, +1
	users    int
	received atomic.Int64
}

// scan records the change whose marker raw carries, if any.
func (o *observer) scan(raw []byte) {
	now := time.Since(o.run.base).Nanoseconds()
	for {
		i := bytes.Index(raw, o.run.tag)
		if i < 0 {
			return
		}
		raw = raw[i+len(o.run.tag):]
		seq, n := digits(raw)
		raw = raw[n:]
		if n > 0 && seq < o.run.max {
			o.record(seq, now)
			return // one change per stanza
		}
	}
}

// record notes that change seq arrived at now.
func (o *observer) record(seq int, now int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.recv[seq] != 0 {
		o.dups++
		return
	}
	o.recv[seq] = now
	o.count++
	if o.users > 0 {
		u := seq % o.users
		if o.last[u] > seq+1 {
			o.reorders++
		} else {
			o.last[u] = seq + 1
		}
	}
	o.received.Add(1)
}

func digits(b []byte) (v, n int) {
	for n < len(b) && n < 9 && b[n] >= '0' && b[n] <= '9' {
		v = v*10 + int(b[n]-'0')
		n++
	}
	return v, n
}

var shows = [...]string{"away", "xa", "dnd", "chat", ""}

// Drive sends the changes: change seq goes from user seq mod n, with a
// show that differs from that user's previous one and the marker as status
// text. It paces the changes at cfg.Rate, stops at cfg.Duration or
// cfg.Changes, waits up to cfg.Drain for the observers, and reports.
func (r *Run) Drive(ctx context.Context, f *Fleet) (Report, error) {
	n := f.Len()
	r.mu.Lock()
	for _, o := range r.observers {
		o.mu.Lock()
		o.users, o.last = n, make([]int, n)
		o.mu.Unlock()
	}
	r.mu.Unlock()
	var deadline time.Time
	start := time.Now()
	if r.cfg.Duration > 0 {
		deadline = start.Add(r.cfg.Duration)
	}
	var sendErr error
	seq := 0
	for seq < r.max && ctx.Err() == nil {
		if r.cfg.Rate > 0 {
			due := start.Add(time.Duration(float64(seq) / r.cfg.Rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
		}
		if !deadline.IsZero() && time.Now().After(deadline) {
			break
		}
		cl := f.Client(seq % n)
		r.at[seq].Store(time.Since(r.base).Nanoseconds())
		if err := cl.Presence(shows[(seq/n)%len(shows)], r.Marker(seq), 0); err != nil {
			sendErr = fmt.Errorf("change %d from %s: %w", seq, cl.JID(), err)
			r.at[seq].Store(0)
			break
		}
		seq++
		r.sent.Store(int64(seq))
	}
	sendTook := time.Since(start)
	r.wait(ctx, seq)
	rep := r.report(seq, sendTook)
	return rep, sendErr
}

// wait returns once every observer has received sent changes, or after
// cfg.Drain, or when ctx ends.
func (r *Run) wait(ctx context.Context, sent int) {
	end := time.Now().Add(r.cfg.Drain)
	for time.Now().Before(end) && ctx.Err() == nil {
		all := true
		r.mu.Lock()
		for _, o := range r.observers {
			if o.received.Load() < int64(sent) {
				all = false
			}
		}
		r.mu.Unlock()
		if all {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Report is what one run sent and what each observer received.
type Report struct {
	Sent     int
	SendTook time.Duration // first change sent to last change sent
	Streams  []Stream
}

// Stream is what one observer received.
type Stream struct {
	Name       string
	Received   int
	Lost       int // sent and not received within the drain
	Duplicates int // received more than once
	Reordered  int // received before an older change of the same user
	// Span runs from the first change sent to the last change received.
	Span               time.Duration
	P50, P90, P99, Max time.Duration // from sent to received
}

// Rate returns the changes received per second over the span.
func (s Stream) Rate() float64 {
	if s.Span <= 0 {
		return 0
	}
	return float64(s.Received) / s.Span.Seconds()
}

func (r *Run) report(sent int, took time.Duration) Report {
	rep := Report{Sent: sent, SendTook: took}
	first := int64(0)
	if sent > 0 {
		first = r.at[0].Load()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range r.observers {
		o.mu.Lock()
		s := Stream{Name: o.name, Received: o.count, Duplicates: o.dups, Reordered: o.reorders}
		lat := make([]time.Duration, 0, o.count)
		var last int64
		for seq := 0; seq < sent; seq++ {
			got := o.recv[seq]
			if got == 0 {
				s.Lost++
				continue
			}
			lat = append(lat, time.Duration(got-r.at[seq].Load()))
			last = max(last, got)
		}
		o.mu.Unlock()
		if len(lat) > 0 {
			slices.Sort(lat)
			s.P50, s.P90, s.P99, s.Max = pct(lat, 50), pct(lat, 90), pct(lat, 99), lat[len(lat)-1]
			s.Span = time.Duration(last - first)
		}
		rep.Streams = append(rep.Streams, s)
	}
	return rep
}

// pct returns the p-th percentile of sorted (nearest rank).
func pct(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100
	return sorted[min(max(i-1, 0), len(sorted)-1)]
}

// Stream returns the stream of the observer called name.
func (rep Report) Stream(name string) (Stream, bool) {
	for _, s := range rep.Streams {
		if s.Name == name {
			return s, true
		}
	}
	return Stream{}, false
}

// String formats the report as a few aligned lines.
func (rep Report) String() string {
	var b strings.Builder
	rate := 0.0
	if rep.SendTook > 0 {
		rate = float64(rep.Sent) / rep.SendTook.Seconds()
	}
	fmt.Fprintf(&b, "sent %d changes in %v (%.0f/s)\n", rep.Sent, rep.SendTook.Round(time.Millisecond), rate)
	for _, s := range rep.Streams {
		fmt.Fprintf(&b, "%-8s received %d lost %d dup %d reordered %d in %v (%.0f/s); latency p50 %v p90 %v p99 %v max %v\n",
			s.Name, s.Received, s.Lost, s.Duplicates, s.Reordered, s.Span.Round(time.Millisecond), s.Rate(),
			rd(s.P50), rd(s.P90), rd(s.P99), rd(s.Max))
	}
	return b.String()
}

func rd(d time.Duration) time.Duration {
	if d < time.Millisecond {
		return d.Round(time.Microsecond)
	}
	return d.Round(100 * time.Microsecond)
}
