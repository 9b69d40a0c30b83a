package service

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestOutboxKeepsOrderWhileTheWriterWaits: answers pushed while the writer
// is stuck are all sent, in order, once it moves; push never waits.
func TestOutboxKeepsOrderWhileTheWriterWaits(t *testing.T) {
	gate := make(chan struct{})
	var mu sync.Mutex
	var sent []string
	o := newOutbox(func(ctx context.Context, raw []byte) error {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
		mu.Lock()
		sent = append(sent, string(raw))
		mu.Unlock()
		return nil
	}, func() { t.Error("dropped an answer under the bound") })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); o.run(ctx) }()
	const n = 5000
	pushed := make(chan struct{})
	go func() {
		defer close(pushed)
		for i := range n {
			o.push([]byte(fmt.Sprint(i)))
		}
	}()
	select {
	case <-pushed:
	case <-time.After(10 * time.Second):
		t.Fatal("push waited for a stuck writer")
	}
	close(gate)
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		k := len(sent)
		mu.Unlock()
		if k == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d sent", k, n)
		}
		time.Sleep(time.Millisecond)
	}
	for i, s := range sent {
		if s != fmt.Sprint(i) {
			t.Fatalf("answer %d is %s: out of order", i, s)
		}
	}
	cancel()
	<-done
}

// TestOutboxBound: over maxReplies waiting, answers are dropped and
// counted; a failed send (the stream ended) ends run.
func TestOutboxBound(t *testing.T) {
	dropped := 0
	o := newOutbox(func(context.Context, []byte) error { return errors.New("stream ended") }, func() { dropped++ })
	for range maxReplies + 3 {
		o.push([]byte("x"))
	}
	if dropped != 3 || o.len() != maxReplies {
		t.Fatalf("dropped %d, waiting %d; want 3, %d", dropped, o.len(), maxReplies)
	}
	// The phase announcement goes in whole, past the bound.
	o.pushAll([][]byte{[]byte("a"), []byte("b")})
	if dropped != 3 || o.len() != maxReplies+2 {
		t.Fatalf("after pushAll: dropped %d, waiting %d; want 3, %d", dropped, o.len(), maxReplies+2)
	}
	done := make(chan struct{})
	go func() { defer close(done); o.run(context.Background()) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("run went on after the send failed")
	}
}
