package service

import (
	"context"
	"time"

	"github.com/pubpresence/pubpresence/component"
	"github.com/pubpresence/pubpresence/nodes"
	"github.com/pubpresence/pubpresence/pubsub"
	"github.com/pubpresence/pubpresence/status"
)

// Bounds of a clean stop: the queue gets drainTimeout to send what it has,
// then leave gets leaveTimeout to publish init; component.Conn.Close waits
// one more second for the server's end of the stream.
const (
	drainTimeout = 4 * time.Second
	leaveTimeout = 3 * time.Second
)

// stop ends the streams cleanly (SIGINT, SIGTERM) while one is up: what is
// queued is sent and answered within drainTimeout, or abandoned and counted;
// then readers are told the nodes are no longer kept. Presence that arrives
// meanwhile is read and dropped: the next start resyncs.
func (ss *session) stop() {
	start := time.Now()
	drained := false
	select {
	case <-ss.queueStart:
		ss.queue.SetLiveShare(liveShare) // live events held in init go too
		drained = ss.waitDiscarding(ss.queue.Drained(), drainTimeout)
	default: // the queue never started: what it holds was never sent
	}
	abandoned := 0
	if !drained {
		abandoned = ss.queue.Pending()
	}
	ev := ss.svc.log.Info()
	if abandoned > 0 {
		ev = ss.svc.log.Warn()
	}
	ev.Int("abandoned", abandoned).Dur("took_ms", time.Since(start)).Msg("stopping: publish queue drained")
	ss.leave()
}

// waitDiscarding waits until done is closed, the last stream ends or
// timeout passes, reading and dropping inbound stanzas and events
// meanwhile so that the streams' readers can deliver the answers being
// waited for. It reports whether done was closed.
func (ss *session) waitDiscarding(done <-chan struct{}, timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case <-done:
			return true
		case ev := <-ss.srv.events:
			switch ev.Kind {
			case component.EventUp:
				ss.srv.streams[ev.Stream].conn = ev.Conn
			case component.EventDown:
				ss.srv.streams[ev.Stream].conn = nil
				if ss.srv.up() == 0 {
					return false
				}
			}
		case <-ss.crew.events:
		case <-t.C:
			return false
		}
	}
}

// leave tells readers the nodes are no longer kept, on a clean stop while
// a stream is still up: init on the status node and unavailable presence
// to the subscribers, within leaveTimeout.
func (ss *session) leave() {
	var err error
	cfg := ss.svc.cfg()
	published := make(chan struct{})
	go func() {
		defer close(published)
		ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
		defer cancel()
		err = pubsub.Publish(ctx, ss.srv, cfg.XMPP.Pubsub, cfg.Nodes.Status, nodes.StatusItemID, status.StateInit.Item())
	}()
	ss.waitDiscarding(published, leaveTimeout)
	<-published // bounded by the publish's own leaveTimeout
	for jid := range ss.svc.subscribers {
		if !ss.srv.TrySend(ss.srv.Presence(jid, "unavailable", "", "")) {
			break
		}
	}
	ev := ss.svc.log.Info()
	if err != nil {
		ev = ss.svc.log.Warn().Err(err)
	}
	ev.Int("subscribers", len(ss.svc.subscribers)).Msg("leaving: init published")
}
