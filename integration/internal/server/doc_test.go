package server

import (
	"os"
	"strings"
	"testing"
)

// TestDocsProsodySnippet keeps docs/prosody.md equal to what the tests run.
func TestDocsProsodySnippet(t *testing.T) {
	b, err := os.ReadFile("../../../docs/prosody.md")
	if err != nil {
		t.Fatal(err)
	}
	snippet := DocSnippet()
	if !strings.Contains(string(b), snippet) {
		t.Errorf("docs/prosody.md does not hold the snippet the tests use; put this in its lua block:\n%s", snippet)
	}
	for _, want := range []string{`admins = { "pubpresence.example.org" }`, `Component "pubsub.example.org" "pubsub"`,
		`component_secret = "change-me"`, "pubsub_max_items = 10000", `storage = "sql"`} {
		if !strings.Contains(snippet, want) {
			t.Errorf("snippet lacks %q", want)
		}
	}
}
