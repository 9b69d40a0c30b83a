package testserver

import (
	"os"
	"strings"
	"testing"
)

// TestDocsSnippets keeps docs/prosody.md and docs/ejabberd.md equal to what
// the tests run: the component's configuration, the privileged presence
// (XEP-0356) of WithPrivilege and, for ejabberd, the HTTP API of APIURL.
func TestDocsSnippets(t *testing.T) {
	type block struct {
		name, text string
		wants      []string
	}
	blocks := map[Kind][]block{
		Prosody: {
			{"component", DocSnippet(Prosody), []string{`admins = { "pubpresence.example.org" }`, `Component "pubsub.example.org" "pubsub"`,
				`component_secret = "change-me"`, "pubsub_max_items = 10000", `storage = "sql"`, `modules_enabled = { "groups" }`}},
			{"groups file", DocGroupsFile(), []string{"[+pubpresence]"}},
			{"privilege", DocPrivilegeSnippet(Prosody), []string{
				"VirtualHost \"example.org\" section", "\tmodules_enabled = { \"privilege\" }\n\t-- mod_privilege",
				`["pubpresence.example.org"] = { presence = "managed_entity"; roster = "get"; };`,
				"-- In the Component \"pubpresence.example.org\" section:"}},
		},
		Ejabberd: {
			{"component", DocSnippet(Ejabberd), []string{"module: ejabberd_service", `"pubpresence.example.org":`, `password: "change-me"`,
				"max_items_node: 10000", "- allow: pubpresence", "mod_configure: {}", `ip: "::1"`}},
			{"privilege", DocPrivilegeSnippet(Ejabberd), []string{"pubpresence_privileged:\n    - allow: pubpresence",
				"get: pubpresence_privileged", "managed_entity: pubpresence_privileged"}},
			{"ejabberd.schema", DocMnesiaSchema(), []string{"roster:\n  storage_type: disc_copies\n  index: [us]\n"}},
			{"HTTP API", DocAPISnippet(), []string{"module: ejabberd_http", "/api: mod_http_api", "ip: \"127.0.0.1\"",
				"ip: 127.0.0.1/8", "- connected_users_info", "mod_admin_extra: {}", "http://127.0.0.1:5280/api"}},
		},
	}
	for _, kind := range Kinds {
		path := "../../docs/" + string(kind) + ".md"
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		doc := string(b)
		if !strings.Contains(doc, "\n## Privileged presence (XEP-0356)\n") {
			t.Errorf("%s has no section \"Privileged presence (XEP-0356)\"", path)
		}
		for _, bl := range blocks[kind] {
			if !strings.Contains(doc, bl.text) {
				t.Errorf("%s does not hold the %s block the tests use; put this in its config block:\n%s", path, bl.name, bl.text)
			}
			for _, want := range bl.wants {
				if !strings.Contains(bl.text, want) {
					t.Errorf("%s %s block lacks %q:\n%s", kind, bl.name, want, bl.text)
				}
			}
		}
	}
}
