package xmpp

import (
	"context"
	"sync"
	"time"
)

// Patience decides how long a request waits for its answer. A busy server
// answers late, but it answers, and in order: while it sends, a request
// waits on. It fails once the server has sent nothing for Quiet (since the
// request was sent, or since the last stanza, whichever is later); once it
// has waited Quiet and a request sent after it has been answered (its own
// answer was lost, or went to another connection); or once it has waited
// Max in all. With Last nil, or Max at most Quiet, it is a fixed timeout
// of Quiet.
type Patience struct {
	Quiet time.Duration
	Max   time.Duration
	// Last returns when the server last sent anything, the zero time
	// before.
	Last func() time.Time
	// Overtaken, if set, returns when the latest-sent request that has
	// been answered was sent (Calls.Overtaken).
	Overtaken func() time.Time
}

// Check reports whether a request sent at start has waited too long at
// now and, when it has not, how long until it should be asked again.
func (p Patience) Check(start, now time.Time) (expired bool, again time.Duration) {
	age := now.Sub(start)
	limit := max(p.Max, p.Quiet)
	if p.Last == nil {
		limit = p.Quiet
	}
	if age >= limit {
		return true, 0
	}
	since := start
	if p.Last != nil {
		if last := p.Last(); last.After(since) {
			since = last
		}
	}
	quiet := now.Sub(since)
	if quiet >= p.Quiet {
		return true, 0
	}
	again = min(p.Quiet-quiet, limit-age)
	if p.Overtaken != nil {
		if age >= p.Quiet {
			if p.Overtaken().After(start) {
				return true, 0
			}
		} else {
			again = min(again, p.Quiet-age)
		}
	}
	return false, again
}

// Context returns a context that ends as ctx does, or with
// context.DeadlineExceeded once Check says a request sent now has waited
// too long. Its cancel must be called: it stops the one goroutine that
// watches it.
func (p Patience) Context(ctx context.Context) (context.Context, context.CancelFunc) {
	start := time.Now()
	c := &patientCtx{Context: ctx, done: make(chan struct{}), deadline: start.Add(max(p.Max, p.Quiet))}
	if p.Last == nil {
		c.deadline = start.Add(p.Quiet)
	}
	if d, ok := ctx.Deadline(); ok && d.Before(c.deadline) {
		c.deadline = d
	}
	stop := make(chan struct{})
	var once sync.Once
	go func() {
		timer := time.NewTimer(p.Quiet)
		defer timer.Stop()
		for {
			select {
			case <-ctx.Done():
				c.end(ctx.Err())
				return
			case <-stop:
				c.end(context.Canceled)
				return
			case now := <-timer.C:
				expired, again := p.Check(start, now)
				if expired {
					c.end(context.DeadlineExceeded)
					return
				}
				timer.Reset(again)
			}
		}
	}()
	return c, func() { once.Do(func() { close(stop) }) }
}

// patientCtx is the context of Patience.Context: its parent's values, its
// own end.
type patientCtx struct {
	context.Context
	done     chan struct{}
	deadline time.Time // the latest it can end: for callers that look
	mu       sync.Mutex
	err      error
}

func (c *patientCtx) Deadline() (time.Time, bool) { return c.deadline, true }
func (c *patientCtx) Done() <-chan struct{}       { return c.done }

func (c *patientCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *patientCtx) end(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
		close(c.done)
	}
}
