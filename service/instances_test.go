package service

import (
	"io"
	"testing"
	"time"

	"github.com/rs/zerolog"
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
