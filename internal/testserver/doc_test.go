package testserver

import (
	"os"
	"strings"
	"testing"
)

// TestDocsSnippets keeps docs/prosody.md and docs/ejabberd.md equal to what
// the tests run.
func TestDocsSnippets(t *testing.T) {
	wants := map[Kind][]string{
		Prosody: {`admins = { "pubpresence.example.org" }`, `Component "pubsub.example.org" "pubsub"`,
			`component_secret = "change-me"`, "pubsub_max_items = 10000", `storage = "sql"`},
		Ejabberd: {"module: ejabberd_service", `"pubpresence.example.org":`, `password: "change-me"`,
			"max_items_node: 10000", "- allow: pubpresence", "mod_configure: {}", `ip: "::1"`},
	}
	for _, kind := range Kinds {
		path := "../../docs/" + string(kind) + ".md"
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		snippet := DocSnippet(kind)
		if !strings.Contains(string(b), snippet) {
			t.Errorf("%s does not hold the snippet the tests use; put this in its config block:\n%s", path, snippet)
		}
		if kind == Prosody && !strings.Contains(string(b), DocGroupsFile()) {
			t.Errorf("%s does not hold the groups file the tests use:\n%s", path, DocGroupsFile())
		}
		for _, want := range wants[kind] {
			if !strings.Contains(snippet, want) {
				t.Errorf("%s snippet lacks %q", kind, want)
			}
		}
	}
}
