package nodes

import (
	"reflect"
	"testing"

	"github.com/pubpresence/pubpresence/config"
	"github.com/pubpresence/pubpresence/pubsub"
)

func TestConfigs(t *testing.T) {
	n := config.Nodes{Live: "l", Actual: "a", Status: "s", AccessModel: "open"}
	want := []pubsub.NodeConfig{
		{Node: "s", Title: "pubpresence: service status", Persist: true, MaxItems: "1", SendLast: "on_sub", AccessModel: "open"},
		{Node: "l", Title: "pubpresence: presence events", Persist: false, MaxItems: "1", SendLast: "never", AccessModel: "open"},
		{Node: "a", Title: "pubpresence: online connections", Persist: true, MaxItems: "max", SendLast: "never", AccessModel: "open"},
	}
	if got := Configs(n); !reflect.DeepEqual(got, want) {
		t.Errorf("Configs(%+v) =\n %+v\nwant\n %+v", n, got, want)
	}
}
