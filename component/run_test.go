package component_test

import (
	"context"
	"errors"
	"math"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/internal/xmpp"
	"github.com/pubpresence/pubpresence/internal/xmpptest"
)

func TestBackoff(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name     string
		min, max time.Duration
		caps     []time.Duration // min·2ⁿ capped at max, for n = 0, 1, …
	}{
		{"defaults", 0, 0, []time.Duration{500 * ms, time.Second, 2 * time.Second, 4 * time.Second,
			8 * time.Second, 16 * time.Second, 32 * time.Second, time.Minute, time.Minute, time.Minute}},
		{"small", 100 * ms, time.Second, []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, time.Second, time.Second}},
		{"max not a power of two", 10 * ms, 35 * ms, []time.Duration{10 * ms, 20 * ms, 35 * ms, 35 * ms}},
		{"min equals max", time.Second, time.Second, []time.Duration{time.Second, time.Second, time.Second}},
		{"min above max", 2 * time.Second, time.Second, []time.Duration{time.Second, time.Second}},
		{"only max", 0, 300 * ms, []time.Duration{300 * ms, 300 * ms, 300 * ms}},
	}
	const samples = 300
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lo := make([]time.Duration, len(tt.caps))
			hi := make([]time.Duration, len(tt.caps))
			for i := range lo {
				lo[i] = math.MaxInt64
			}
			for s := 0; s < samples; s++ {
				b := component.Backoff{Min: tt.min, Max: tt.max}
				for n, c := range tt.caps {
					d := b.Next()
					if d < c/2 || d > c {
						t.Fatalf("sample %d, attempt %d: Next() = %v, want within [%v, %v]", s, n, d, c/2, c)
					}
					lo[n] = min(lo[n], d)
					hi[n] = max(hi[n], d)
				}
			}
			// Jitter: the samples spread over the range, not one value.
			for n, c := range tt.caps {
				if lo[n] > c*3/4 || hi[n] < c*3/4 {
					t.Errorf("attempt %d: %d samples all in [%v, %v], want them spread over [%v, %v]",
						n, samples, lo[n], hi[n], c/2, c)
				}
			}
		})
	}
}

func TestBackoffReset(t *testing.T) {
	b := component.Backoff{Min: 100 * time.Millisecond, Max: 10 * time.Second}
	for i := 0; i < 6; i++ {
		b.Next()
	}
	if d := b.Next(); d < 3200*time.Millisecond {
		t.Fatalf("attempt 7 = %v, want at least 3.2s", d)
	}
	b.Reset()
	for n, c := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond} {
		if d := b.Next(); d < c/2 || d > c {
			t.Errorf("attempt %d after Reset = %v, want within [%v, %v]", n, d, c/2, c)
		}
	}
}

// A very large Max ("no real cap") must not overflow min·2ⁿ into a negative
// duration (rand.N panics on it) after a few dozen attempts.
func TestBackoffLargeMax(t *testing.T) {
	b := component.Backoff{Min: time.Second, Max: math.MaxInt64}
	prev := time.Duration(0)
	for n := 0; n < 100; n++ {
		var d time.Duration
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("attempt %d: Next panicked: %v", n, r)
				}
			}()
			d = b.Next()
		}()
		if d < time.Second/2 || d < prev/2 {
			t.Fatalf("attempt %d: Next() = %v after %v", n, d, prev)
		}
		prev = d
	}
}

// runResult runs Run in a goroutine and returns its result channel.
func goRun(ctx context.Context, cfg component.Config, maxBackoff time.Duration, hooks component.Hooks,
	session func(context.Context, *component.Conn) error) <-chan error {
	done := make(chan error, 1)
	go func() { done <- component.Run(ctx, cfg, maxBackoff, hooks, session) }()
	return done
}

func waitRun(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(wait):
		t.Fatal("Run did not return after its ctx was cancelled")
		return nil
	}
}

// waitSession is a session that returns when its ctx ends, or fails the
// session after wait.
func waitSession(ctx context.Context, c *component.Conn) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(wait):
		return errors.New("session ctx was not cancelled")
	}
}

func TestRunRedials(t *testing.T) {
	// The server drops every stream right after the handshake.
	srv := newFakeServerWith(t, xmpptest.Config{Script: func(sc *xmpptest.Conn) { sc.Close() }})
	var mu sync.Mutex
	var connected, sessions int
	var downs []error
	hooks := component.Hooks{
		Connected: func(c *component.Conn) { mu.Lock(); connected++; mu.Unlock() },
		Disconnected: func(err error, up time.Duration) {
			mu.Lock()
			downs = append(downs, err)
			mu.Unlock()
		},
		DialFailed: func(err error, wait time.Duration) { t.Errorf("DialFailed(%v)", err) },
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := goRun(ctx, config(srv), 20*time.Millisecond, hooks, func(ctx context.Context, c *component.Conn) error {
		mu.Lock()
		sessions++
		mu.Unlock()
		return waitSession(ctx, c)
	})
	eventually(t, "3 sessions", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(downs) >= 3
	})
	cancel()
	if err := waitRun(t, done); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	mu.Lock()
	defer mu.Unlock()
	// The last handshake may have been cut short by the cancel.
	if connected != sessions || int(srv.Authenticated()) < connected || connected < 3 {
		t.Errorf("connected %d, sessions %d, server handshakes %d", connected, sessions, srv.Authenticated())
	}
	for i, err := range downs {
		// The session ended because its ctx was cancelled when the stream
		// ended, and Disconnected gets the stream's error.
		if err == nil || errors.Is(err, context.Canceled) || err.Error() == "session ctx was not cancelled" {
			t.Errorf("Disconnected %d got %v, want the stream's error", i, err)
		}
	}
}

func TestRunDialFailed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now: connection refused

	const maxBackoff = 20 * time.Millisecond
	type failure struct {
		err  error
		wait time.Duration
	}
	var mu sync.Mutex
	var fails []failure
	hooks := component.Hooks{
		Connected: func(c *component.Conn) { t.Error("Connected to a closed port") },
		DialFailed: func(err error, wait time.Duration) {
			mu.Lock()
			fails = append(fails, failure{err, wait})
			mu.Unlock()
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := component.Config{Address: addr, Name: compName, Secret: compSecret, DialTimeout: wait}
	done := goRun(ctx, cfg, maxBackoff, hooks, func(ctx context.Context, c *component.Conn) error {
		t.Error("session called")
		return nil
	})
	eventually(t, "4 dial failures", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(fails) >= 4
	})
	cancel()
	if err := waitRun(t, done); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, f := range fails {
		if !errors.Is(f.err, syscall.ECONNREFUSED) {
			t.Errorf("DialFailed %d: err = %v, want connection refused", i, f.err)
		}
		if f.wait < maxBackoff/2 || f.wait > maxBackoff {
			t.Errorf("DialFailed %d: wait = %v, want within [%v, %v]", i, f.wait, maxBackoff/2, maxBackoff)
		}
	}
}

func TestRunSessionCancelledOnStreamEnd(t *testing.T) {
	srv := newFakeServer(t)
	ended := make(chan error, 1)
	var down sync.Once
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hooks := component.Hooks{Disconnected: func(err error, up time.Duration) {
		down.Do(func() { ended <- err })
	}}
	var sessions sync.WaitGroup
	sessions.Add(1)
	var once sync.Once
	done := goRun(ctx, config(srv), 20*time.Millisecond, hooks, func(sctx context.Context, c *component.Conn) error {
		once.Do(sessions.Done)
		err := waitSession(sctx, c)
		if err.Error() == "session ctx was not cancelled" {
			t.Error(err)
		}
		return err
	})
	sc := srv.Conn(t)
	sessions.Wait()
	_ = sc.Write(xmpptest.StreamError("conflict", "Replaced by a new connection"))
	select {
	case err := <-ended:
		if !errors.Is(err, xmpp.ErrStreamConflict) {
			t.Errorf("Disconnected got %v, want the conflict stream error", err)
		}
	case <-time.After(wait):
		t.Fatal("the session did not end with the stream")
	}
	// Run dials again.
	srv.Conn(t)
	cancel()
	if err := waitRun(t, done); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
}

func TestRunSessionError(t *testing.T) {
	srv := newFakeServer(t)
	boom := errors.New("boom")
	ended := make(chan error, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hooks := component.Hooks{Disconnected: func(err error, up time.Duration) {
		select {
		case ended <- err:
		default: // Run goes on reconnecting; the first few are enough
		}
	}}
	done := goRun(ctx, config(srv), 20*time.Millisecond, hooks, func(context.Context, *component.Conn) error {
		return boom
	})
	select {
	case err := <-ended:
		if !errors.Is(err, boom) {
			t.Errorf("Disconnected got %v, want the session's error", err)
		}
	case <-time.After(wait):
		t.Fatal("Disconnected not called")
	}
	sc := srv.Conn(t)
	eventually(t, "Run to close the stream after the session", sc.GotStreamEnd)
	cancel()
	if err := waitRun(t, done); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
}

// Cancelling Run's ctx ends the session and closes the stream properly.
func TestRunCancelClosesStream(t *testing.T) {
	srv := newFakeServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var conn *component.Conn
	connected := make(chan struct{})
	hooks := component.Hooks{Connected: func(c *component.Conn) { conn = c; close(connected) }}
	done := goRun(ctx, config(srv), 20*time.Millisecond, hooks, waitSession)
	sc := srv.Conn(t)
	select {
	case <-connected:
	case <-time.After(wait):
		t.Fatal("not connected")
	}
	cancel()
	if err := waitRun(t, done); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	if !sc.GotStreamEnd() {
		t.Error("the server did not get </stream:stream>")
	}
	if !errors.Is(conn.Err(), component.ErrClosed) {
		t.Errorf("Conn.Err() = %v, want ErrClosed", conn.Err())
	}
}

type retryLater struct{ d time.Duration }

func (e retryLater) Error() string             { return "later" }
func (e retryLater) RetryAfter() time.Duration { return e.d }

// A session error with RetryAfter sets the wait before the next dial,
// instead of the (here much shorter) backoff.
func TestRunRetryAfter(t *testing.T) {
	srv := newFakeServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var starts []time.Time
	done := goRun(ctx, config(srv), 10*time.Millisecond, component.Hooks{}, func(context.Context, *component.Conn) error {
		mu.Lock()
		starts = append(starts, time.Now())
		mu.Unlock()
		return retryLater{300 * time.Millisecond}
	})
	eventually(t, "two sessions", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(starts) >= 2
	})
	cancel()
	waitRun(t, done)
	mu.Lock()
	defer mu.Unlock()
	if gap := starts[1].Sub(starts[0]); gap < 300*time.Millisecond {
		t.Errorf("dialled again after %v, want at least the 300ms the session asked for", gap)
	}
}
