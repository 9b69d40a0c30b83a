package web

import (
	"encoding/xml"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/pubpresence/pubpresence/internal/feed"
	"github.com/pubpresence/pubpresence/metrics"
	"github.com/pubpresence/pubpresence/status"
)

// pageHandler is the HTTP handler with the API (and so the page) on.
func pageHandler(t *testing.T) http.Handler {
	t.Helper()
	toks, err := ParseTokens([]byte("page-test-token-0123456789\n"))
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New("test")
	st := &status.Tracker{}
	api := NewAPI(APIConfig{Feed: feed.New(feed.Config{}), Tokens: toks, Domains: []string{"example.org"}}, m, st)
	t.Cleanup(api.Close)
	return Handler(m, st, api)
}

func fetchPage(t *testing.T, h http.Handler, path string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Result()
}

// pageRefs reads index.html leniently as HTML and returns the local files
// it refers to (src and href), and what CSP would refuse in it: inline
// scripts, style elements and attributes, event handler attributes,
// javascript: URLs, and anything loaded from elsewhere.
func pageRefs(t *testing.T, html string) (refs, refused []string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(html))
	d.Strict = false
	d.AutoClose = xml.HTMLAutoClose
	d.Entity = xml.HTMLEntity
	inScript := false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("index.html: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			name := strings.ToLower(tok.Name.Local)
			hasSrc := false
			for _, a := range tok.Attr {
				attr := strings.ToLower(a.Name.Local)
				switch {
				case attr == "style":
					refused = append(refused, "a style attribute on <"+name+">")
				case strings.HasPrefix(attr, "on"):
					refused = append(refused, "an event handler attribute "+attr+" on <"+name+">")
				case attr == "src" || attr == "href":
					v := strings.TrimSpace(a.Value)
					if strings.Contains(v, "//") || strings.Contains(v, ":") {
						refused = append(refused, "a URL that is not a file of the page ("+v+") on <"+name+">")
					} else {
						refs = append(refs, v)
					}
					hasSrc = hasSrc || attr == "src"
				}
			}
			switch name {
			case "style":
				refused = append(refused, "a <style> element")
			case "script":
				if !hasSrc {
					refused = append(refused, "an inline <script>")
				}
				inScript = true
			}
		case xml.EndElement:
			if strings.ToLower(tok.Name.Local) == "script" {
				inScript = false
			}
		case xml.CharData:
			if inScript && strings.TrimSpace(string(tok)) != "" {
				refused = append(refused, "a <script> with content")
			}
		}
	}
	return refs, refused
}

func TestPage(t *testing.T) {
	h := pageHandler(t)
	resp := fetchPage(t, h, "/")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /: %d", resp.StatusCode)
	}
	html := string(body)
	checkPageHeaders(t, "/", resp, "text/html; charset=utf-8")
	if !strings.Contains(html, `id="users"`) || !strings.Contains(html, `id="token-form"`) {
		t.Errorf("GET / is not the page:\n%s", html)
	}

	refs, refused := pageRefs(t, html)
	for _, r := range refused {
		t.Errorf("index.html has %s: the CSP blocks it", r)
	}
	want := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
	seen := map[string]bool{}
	for _, ref := range refs {
		path := "/" + strings.TrimPrefix(ref, "./")
		seen[path] = true
		resp := fetchPage(t, h, path)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("index.html refers to %s: GET %s answers %d", ref, path, resp.StatusCode)
			continue
		}
		ext := path[strings.LastIndexByte(path, '.'):]
		ct, ok := want[ext]
		if !ok {
			t.Errorf("index.html refers to %s, of a kind this test does not know", ref)
			continue
		}
		checkPageHeaders(t, path, resp, ct)
	}
	for _, f := range []string{"/app.js", "/style.css"} {
		if !seen[f] {
			t.Errorf("index.html does not load %s (it loads %v)", f, refs)
		}
	}

	// The script finds every element it uses.
	js, err := fs.ReadFile(pageFiles, "page/app.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`\$\('([a-z-]+)'\)`).FindAllStringSubmatch(string(js), -1) {
		if !strings.Contains(html, `id="`+m[1]+`"`) {
			t.Errorf("app.js uses #%s, which index.html lacks", m[1])
		}
	}
	// Nothing in the files goes elsewhere, nor puts the token in a URL.
	css, _ := fs.ReadFile(pageFiles, "page/style.css")
	for name, text := range map[string]string{"app.js": string(js), "style.css": string(css), "index.html": html} {
		for _, bad := range []string{"http://", "https://", "@import", "url(", "EventSource(", "access_token", "?token"} {
			if strings.Contains(text, bad) {
				t.Errorf("%s contains %q", name, bad)
			}
		}
	}

	// Files that are not there, and the page without the API.
	if resp := fetchPage(t, h, "/nope.js"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nope.js: %d", resp.StatusCode)
	}
	if resp := fetchPage(t, Handler(metrics.New("test"), &status.Tracker{}, nil), "/"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET / without the API: %d, want 404", resp.StatusCode)
	}
}

// checkPageHeaders checks a page file's content type and security headers.
func checkPageHeaders(t *testing.T, path string, resp *http.Response, contentType string) {
	t.Helper()
	if got := resp.Header.Get("Content-Type"); got != contentType {
		t.Errorf("GET %s: Content-Type %q, want %q", path, got, contentType)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, d+";") && !strings.HasSuffix(csp, d) {
			t.Errorf("GET %s: the CSP %q lacks %q", path, csp, d)
		}
	}
	if strings.Contains(csp, "unsafe-") {
		t.Errorf("GET %s: the CSP %q allows unsafe-…", path, csp)
	}
	if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("GET %s: X-Content-Type-Options %q", path, got)
	}
}
