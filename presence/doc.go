// Package presence is the state model: the online user connections keyed by full JID.
//
// It holds no network code. ParsePresence validates one presence stanza into
// an Update; State keeps the connections the service tracks and says which
// change is visible; Diff compares what a pubsub node holds with what it
// should hold.
package presence
