package service

import (
	"sync"

	"github.com/rs/zerolog"
)

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

// failureLogs are the loop's bursts: requests that failed, live events
// dropped, user-stats that failed.
type failureLogs struct {
	requests  burst
	liveDrops burst
	lookups   burst
	api       burst
}

// summarize logs, once per check period, how many requests failed and
// events were dropped since the last one (the first of each was logged
// when it happened).
func (f *failureLogs) summarize(log zerolog.Logger) {
	if n := f.requests.take(); n > 1 {
		log.Warn().Int("failed", n).Msg("pubsub requests failed since the last summary (each is logged at debug)")
	}
	if n := f.lookups.take(); n > 1 {
		log.Warn().Int("failed", n).Msg("user-stats failed since the last summary; those connections are published without ip")
	}
	if n := f.api.take(); n > 1 {
		log.Warn().Int("failed", n).Msg("calls to ejabberd's HTTP API failed since the last summary")
	}
	if n := f.liveDrops.take(); n > 1 {
		log.Warn().Int("dropped", n).Msg("live events dropped, publish queue full")
	}
}
