package component

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Backoff is a capped exponential backoff with jitter.
type Backoff struct {
	Min, Max time.Duration // defaults 500ms and 60s
	n        int
}

// Next returns how long to wait before the next attempt: a random duration
// between half and all of min·2ⁿ, capped at Max.
func (b *Backoff) Next() time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = 500 * time.Millisecond
	}
	if hi <= 0 {
		hi = 60 * time.Second
	}
	d := lo
	for i := 0; i < b.n && d < hi; i++ {
		if d > hi/2 {
			d = hi // doubling would pass hi, or overflow
			break
		}
		d *= 2
	}
	if d > hi {
		d = hi
	}
	b.n++
	return d/2 + rand.N(d/2+1)
}

// Reset starts the sequence again from Min.
func (b *Backoff) Reset() { b.n = 0 }

// Hooks are told what the connection loop does; every field may be nil.
type Hooks struct {
	Connected    func(c *Conn)
	Disconnected func(err error, up time.Duration)
	DialFailed   func(err error, wait time.Duration)
}

// RetryAfter is implemented by a session error that says how long Run must
// wait before it dials again, instead of the backoff.
type RetryAfter interface {
	error
	RetryAfter() time.Duration
}

// StableAfter is how long a session must last for the backoff to start again
// from its minimum.
const StableAfter = 30 * time.Second

// Run keeps a stream up until ctx ends: it dials, hands the stream to
// session, and when the stream or the session ends it dials again after a
// backoff. session must return when its ctx ends or when c.Done() is closed;
// Run closes the stream after session returns. Run returns ctx.Err().
func Run(ctx context.Context, cfg Config, maxBackoff time.Duration, hooks Hooks,
	session func(ctx context.Context, c *Conn) error) error {
	b := Backoff{Max: maxBackoff}
	for {
		c, err := Dial(ctx, cfg)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			wait := b.Next()
			if hooks.DialFailed != nil {
				hooks.DialFailed(err, wait)
			}
			if !sleep(ctx, wait) {
				return ctx.Err()
			}
			continue
		}
		start := time.Now()
		if hooks.Connected != nil {
			hooks.Connected(c)
		}
		sctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-c.Done():
				cancel()
			case <-sctx.Done():
			}
		}()
		serr := session(sctx, c)
		cancel()
		_ = c.Close()
		err = c.Err()
		if serr != nil && !errors.Is(serr, context.Canceled) {
			err = serr
		}
		up := time.Since(start)
		if hooks.Disconnected != nil {
			hooks.Disconnected(err, up)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if up >= StableAfter {
			b.Reset()
		}
		wait := b.Next()
		var ra RetryAfter
		if errors.As(serr, &ra) {
			wait = ra.RetryAfter()
		}
		if !sleep(ctx, wait) {
			return ctx.Err()
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
