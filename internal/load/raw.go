package load

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/internal/xmpp"
	"github.com/pubpresence/pubpresence/nodes"
	"github.com/pubpresence/pubpresence/presence"
	"github.com/pubpresence/pubpresence/pubsub"
)

// RawConfig says where a raw publisher connects: a component stream of its
// own, and the pubsub service it publishes to.
type RawConfig struct {
	Addr    string // component address, loopback
	Name    string // component JID
	Secret  string
	Service string // pubsub service JID
	WithIP  bool   // put the ip attribute in user items
	Window  int    // requests in flight at once; default 64, as the service's queue
	Timeout time.Duration
}

// RawOp is one request of a raw publisher: the publication of Conn on
// Node, or, with Retract, the retraction of item ID from Node.
type RawOp struct {
	Node    string
	Conn    presence.Conn
	Retract bool
	ID      string
}

// RawReport is how a raw publisher's requests went.
type RawReport struct {
	Requests int
	Errors   int
	FirstErr error
	Took     time.Duration // first request sent to last answer received
}

// Rate returns the requests answered per second.
func (r RawReport) Rate() float64 {
	if r.Took <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Took.Seconds()
}

// Raw connects a component stream, sends ops pipelined, at most
// cfg.Window in flight, waits for every answer and closes the stream. It
// is the server's ceiling for the same requests: no state, no queue, no
// merging, nothing but the requests. The time does not count the dial.
func Raw(ctx context.Context, cfg RawConfig, ops []RawOp) (RawReport, error) {
	if err := CheckLoopback(cfg.Addr); err != nil {
		return RawReport{}, err
	}
	if cfg.Window <= 0 {
		cfg.Window = 64
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	conn, err := component.Dial(ctx, component.Config{Address: cfg.Addr, Name: cfg.Name, Secret: cfg.Secret})
	if err != nil {
		return RawReport{}, fmt.Errorf("raw publisher: %w", err)
	}
	defer conn.Close()
	go func() {
		for range conn.Inbound() { // presence of subscribed users, unread
		}
	}()

	var (
		mu  sync.Mutex
		rep = RawReport{Requests: len(ops)}
		wg  sync.WaitGroup
		sem = make(chan struct{}, cfg.Window)
		buf []byte
	)
	failed := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		rep.Errors++
		if rep.FirstErr == nil {
			rep.FirstErr = err
		}
	}
	start := time.Now()
	for _, op := range ops {
		sem <- struct{}{}
		buf = buf[:0]
		if op.Retract {
			buf = pubsub.RetractRequest(buf, op.Node, op.ID)
		} else {
			buf = nodes.PublishUserRequest(buf, op.Node, op.Conn, cfg.WithIP)
		}
		rctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		call, err := conn.Start(rctx, "set", cfg.Service, buf)
		if err != nil {
			cancel()
			<-sem
			failed(err)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cancel()
			_, err := call.Wait(rctx)
			<-sem
			if err != nil && !(op.Retract && errors.Is(err, xmpp.ErrItemNotFound)) {
				failed(err)
			}
		}()
	}
	wg.Wait()
	rep.Took = time.Since(start)
	if rep.Errors == len(ops) && len(ops) > 0 {
		return rep, fmt.Errorf("raw publisher: every request failed: %w", rep.FirstErr)
	}
	if err := ctx.Err(); err != nil {
		return rep, errors.Join(err, rep.FirstErr)
	}
	return rep, nil
}
