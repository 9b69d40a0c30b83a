package service

import (
	"context"
	"sync"
)

// maxReplies bounds the presence answers waiting for the stream's writer.
// Each is about 150 bytes: 64 Ki of them is 10 MiB, and more than a login
// storm of that many subscriptions at once.
const maxReplies = 1 << 16

// outbox holds the component's presence answers (to subscriptions and
// probes) between the loop, which must never wait on the stream's writer
// (the writer may wait on the server, which may wait on the reader the
// loop serves), and one goroutine that hands them to the writer in order,
// waiting as long as the writer needs.
//
// Dropping an answer when the writer's own queue is full is not an option:
// a lost subscribe leaves a user untracked until it subscribes again. A
// login storm of 1000 users on ejabberd lost 226 of them that way.
type outbox struct {
	send func(ctx context.Context, raw []byte) error

	mu      sync.Mutex
	q       [][]byte
	wake    chan struct{}
	dropped func() // counts an answer refused over maxReplies
}

func newOutbox(send func(ctx context.Context, raw []byte) error, dropped func()) *outbox {
	return &outbox{send: send, dropped: dropped, wake: make(chan struct{}, 1)}
}

// push queues raw; it never waits. Over maxReplies waiting, raw is
// dropped and counted.
func (o *outbox) push(raw []byte) {
	o.mu.Lock()
	if len(o.q) >= maxReplies {
		o.mu.Unlock()
		o.dropped()
		return
	}
	o.q = append(o.q, raw)
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// pushAll queues every one of raws, beyond maxReplies if need be: the
// component's own presence to each subscriber when its phase changes,
// whose number is that of the users.
func (o *outbox) pushAll(raws [][]byte) {
	o.mu.Lock()
	o.q = append(o.q, raws...)
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// take removes and returns everything queued.
func (o *outbox) take() [][]byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	batch := o.q
	o.q = nil
	return batch
}

// run hands the queued answers to the writer until ctx ends or the stream
// does (send fails); what is left then is dropped with the stream.
func (o *outbox) run(ctx context.Context) {
	for {
		for _, raw := range o.take() {
			if err := o.send(ctx, raw); err != nil {
				return
			}
		}
		select {
		case <-o.wake:
		case <-ctx.Done():
			return
		}
	}
}

// len returns the number of answers waiting.
func (o *outbox) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.q)
}
