// Package nodes is pubpresence's three pubsub nodes: live (one event per
// presence change, not kept), actual (one item per online connection: the
// current state) and status (one item: init or online, sent to a reader
// when it subscribes). It holds their configurations, the items published
// on them (the <user/> item and the status form) and the queue that
// publishes them; package pubsub carries them without knowing them.
package nodes

import (
	"github.com/pubpresence/pubpresence/config"
	"github.com/pubpresence/pubpresence/pubsub"
)

// Configs returns the configurations of the status, live and actual nodes
// of n, in that order. The titles tell the nodes the service made from
// nodes created again by someone else (see pubsub.Title).
func Configs(n config.Nodes) []pubsub.NodeConfig {
	return []pubsub.NodeConfig{
		{Node: n.Status, Title: "pubpresence: service status", Persist: true, MaxItems: "1", SendLast: "on_sub", AccessModel: n.AccessModel},
		{Node: n.Live, Title: "pubpresence: presence events", Persist: false, MaxItems: "1", SendLast: "never", AccessModel: n.AccessModel},
		{Node: n.Actual, Title: "pubpresence: online connections", Persist: true, MaxItems: "max", SendLast: "never", AccessModel: n.AccessModel},
	}
}
