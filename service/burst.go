package service

import "sync"

// burst counts a failure that may come by the thousand — one per request
// or per event — so that it is logged once when it starts and then as one
// summary line per check period, never once per stanza.
type burst struct {
	mu sync.Mutex
	n  int
}

// add counts one and reports whether it is the first since the last take:
// that one is worth a line of its own.
func (b *burst) add() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n++
	return b.n == 1
}

// take returns the count since the last take and starts again at zero.
func (b *burst) take() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := b.n
	b.n = 0
	return n
}
