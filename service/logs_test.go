package service

import (
	"sync"
	"testing"
)

func TestBurst(t *testing.T) {
	var b burst
	if !b.add() {
		t.Error("the first add is not reported as the first")
	}
	var wg sync.WaitGroup
	firsts := make(chan bool, 100)
	for range 99 {
		wg.Add(1)
		go func() { defer wg.Done(); firsts <- b.add() }()
	}
	wg.Wait()
	close(firsts)
	for f := range firsts {
		if f {
			t.Error("a later add reported as the first")
		}
	}
	if n := b.take(); n != 100 {
		t.Errorf("take = %d, want 100", n)
	}
	if n := b.take(); n != 0 {
		t.Errorf("take after take = %d, want 0", n)
	}
	if !b.add() {
		t.Error("the first add after a take is not reported as the first")
	}
}
