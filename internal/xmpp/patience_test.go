package xmpp

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestPatienceCheck(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	last := func(d time.Duration) func() time.Time { return func() time.Time { return at(d) } }
	never := func() time.Time { return time.Time{} }
	const s = time.Second
	for _, tc := range []struct {
		name    string
		p       Patience
		now     time.Duration
		expired bool
		again   time.Duration
	}{
		{"fixed: before", Patience{Quiet: 10 * s}, 4 * s, false, 6 * s},
		{"fixed: at the timeout", Patience{Quiet: 10 * s}, 10 * s, true, 0},
		{"fixed even with Max", Patience{Quiet: 10 * s, Max: 100 * s}, 10 * s, true, 0},
		{"no answer ever", Patience{Quiet: 10 * s, Max: 100 * s, Last: never}, 10 * s, true, 0},
		{"answer before the request counts as none", Patience{Quiet: 10 * s, Max: 100 * s, Last: last(-5 * s)}, 10 * s, true, 0},
		{"answered 3 s ago: wait 7 s more", Patience{Quiet: 10 * s, Max: 100 * s, Last: last(27 * s)}, 30 * s, false, 7 * s},
		{"quiet for the timeout since the last answer", Patience{Quiet: 10 * s, Max: 100 * s, Last: last(20 * s)}, 30 * s, true, 0},
		{"busy until the cap", Patience{Quiet: 10 * s, Max: 100 * s, Last: last(99 * s)}, 100 * s, true, 0},
		{"the cap comes before the quiet", Patience{Quiet: 10 * s, Max: 100 * s, Last: last(95 * s)}, 97 * s, false, 3 * s},
		{"Max below Quiet is Quiet", Patience{Quiet: 10 * s, Max: s, Last: last(4 * s)}, 5 * s, false, 5 * s},
		{"overtaken, waited Quiet: lost", Patience{Quiet: 10 * s, Max: 100 * s, Last: last(29 * s), Overtaken: last(s)}, 10 * s, true, 0},
		{"overtaken, not waited Quiet: wait until then", Patience{Quiet: 10 * s, Max: 100 * s, Last: last(4 * s), Overtaken: last(s)}, 5 * s, false, 5 * s},
		{"only earlier requests answered: busy", Patience{Quiet: 10 * s, Max: 100 * s, Last: last(39 * s), Overtaken: last(-s)}, 40 * s, false, 9 * s},
		{"answered at the same instant is not after", Patience{Quiet: 10 * s, Max: 100 * s, Last: last(19 * s), Overtaken: last(0)}, 20 * s, false, 9 * s},
	} {
		expired, again := tc.p.Check(t0, at(tc.now))
		if expired != tc.expired || again != tc.again {
			t.Errorf("%s: Check = %v, %v; want %v, %v", tc.name, expired, again, tc.expired, tc.again)
		}
	}
}

func TestPatienceContext(t *testing.T) {
	// A server that answers for 200 ms, then falls silent.
	begin := time.Now()
	last := func() time.Time {
		if d := time.Since(begin); d < 200*time.Millisecond {
			return time.Now()
		}
		return begin.Add(200 * time.Millisecond)
	}
	p := Patience{Quiet: 50 * time.Millisecond, Max: 5 * time.Second, Last: last}
	ctx, cancel := p.Context(context.Background())
	defer cancel()
	<-ctx.Done()
	took := time.Since(begin)
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Errorf("Err = %v, want the deadline", ctx.Err())
	}
	if took < 200*time.Millisecond || took > 4*time.Second {
		t.Errorf("ended after %v: want after the answers stopped (200 ms) and long before the cap", took)
	}

	// The parent's end and cancel end it too, with their errors.
	parent, stop := context.WithCancel(context.Background())
	ctx, cancel = p.Context(parent)
	stop()
	<-ctx.Done()
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Errorf("after the parent's cancel: %v", ctx.Err())
	}
	cancel()
	ctx, cancel = Patience{Quiet: time.Hour}.Context(context.Background())
	cancel()
	<-ctx.Done()
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Errorf("after cancel: %v", ctx.Err())
	}
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > time.Hour {
		t.Errorf("Deadline = %v, %v: want the latest it may end", d, ok)
	}
}

func TestCallsLastAnswer(t *testing.T) {
	c := NewCalls[[]byte]("p-", func(to, from string) bool { return to == from })
	if !c.LastAnswer().IsZero() {
		t.Fatal("LastAnswer before any answer is not zero")
	}
	call, err := c.Start("a")
	if err != nil {
		t.Fatal(err)
	}
	id := string(call.AppendID(nil))
	if c.Deliver(id, "b", nil, nil) {
		t.Fatal("an answer from elsewhere was delivered")
	}
	if !c.LastAnswer().IsZero() {
		t.Error("an answer not delivered counts")
	}
	before := time.Now()
	if !c.Deliver(id, "a", nil, nil) {
		t.Fatal("answer not delivered")
	}
	if got := c.LastAnswer(); got.Before(before) || got.After(time.Now()) {
		t.Errorf("LastAnswer = %v, want about %v", got, before)
	}
	if got := c.Overtaken(); got.IsZero() || got.After(before) {
		t.Errorf("Overtaken = %v, want when the answered request was sent, before %v", got, before)
	}
	// Another stanza heard counts; an older time does not go back.
	later := time.Now().Add(time.Hour)
	c.Heard(later.UnixNano())
	c.Heard(before.UnixNano())
	if got := c.LastAnswer(); !got.Equal(time.Unix(0, later.UnixNano())) {
		t.Errorf("LastAnswer after Heard = %v, want %v", got, later)
	}
}
