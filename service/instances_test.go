package service

import (
	"io"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/metrics"
)

// TestIntruders checks that a sighting of another instance is kept until
// the loop is ready for the full resync, and reported once.
func TestIntruders(t *testing.T) {
	log := zerolog.New(io.Discard)
	var in intruders
	if in.gone(log, true) {
		t.Fatal("nothing seen: not gone")
	}
	in.seen()
	if in.gone(log, true) {
		t.Fatal("seen just now: not quiet yet")
	}
	in.at.Store(time.Now().Add(-2 * intruderQuiet).UnixNano())
	if in.gone(log, false) {
		t.Fatal("quiet, but the loop is not ready: kept")
	}
	if !in.gone(log, true) {
		t.Fatal("quiet and ready: gone")
	}
	if in.gone(log, true) {
		t.Fatal("reported twice")
	}
}

// TestOwnStreamStale checks when a connection that takes some of a new
// stream's ping answers is taken for this process's own lost stream (stay)
// rather than for another instance (stand by).
func TestOwnStreamStale(t *testing.T) {
	s := &Service{metrics: metrics.New(""), stepBack: make(chan struct{}, 1)}
	if _, ok := s.ownStreamStale(s.foreignSeen.Load()); ok {
		t.Fatal("no stream lost yet: another instance")
	}
	s.lostOwnStream()
	before := s.foreignSeen.Load()
	if ago, ok := s.ownStreamStale(before); !ok || ago < 0 || ago > time.Minute {
		t.Fatalf("own stream lost just now: ownStreamStale = %v, %v; want its own", ago, ok)
	}
	s.foreign(component.Foreign{ID: "other.x-1", Instance: "other"})
	if _, ok := s.ownStreamStale(before); ok {
		t.Fatal("an answer meant for another instance arrived: another instance")
	}
	s.ownLost.Store(time.Now().Add(-ownStaleWindow - time.Second).UnixNano())
	if _, ok := s.ownStreamStale(s.foreignSeen.Load()); ok {
		t.Fatal("own stream lost long ago: another instance")
	}
}
