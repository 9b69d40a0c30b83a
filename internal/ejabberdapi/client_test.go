package ejabberdapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// fakeAPI answers every request with status and body, and records the last
// request.
type fakeAPI struct {
	status int
	ctype  string
	body   string

	method, path, ctypeIn, payload string
	user, pass                     string
	auth                           bool
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.method, f.path, f.ctypeIn, f.payload = r.Method, r.URL.Path, r.Header.Get("Content-Type"), string(b)
	f.user, f.pass, f.auth = r.BasicAuth()
	if f.ctype != "" {
		w.Header().Set("Content-Type", f.ctype)
	}
	w.WriteHeader(f.status)
	io.WriteString(w, f.body)
}

func TestConnectedUsersInfoRequest(t *testing.T) {
	f := &fakeAPI{status: 200, ctype: "application/json", body: ejabberdStates}
	srv := httptest.NewServer(f)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, base := range []string{srv.URL + "/api", srv.URL + "/api/"} {
		sessions, err := (&Client{URL: base}).ConnectedUsersInfo(context.Background())
		if err != nil || len(sessions) != 11 {
			t.Fatalf("%s: %d sessions, %v", base, len(sessions), err)
		}
		if f.method != "POST" || f.path != "/api/connected_users_info" || f.payload != "{}" || f.ctypeIn != "application/json" || f.auth {
			t.Errorf("%s: request %s %s %q (%s), basic auth %v; want POST /api/connected_users_info {} as JSON, no auth",
				base, f.method, f.path, f.payload, f.ctypeIn, f.auth)
		}
	}
	// Credentials in the URL go out as basic auth, the JID's @ escaped or not.
	for _, base := range []string{"http://admin%40example.org:p%40ss:w@" + host + "/api", "http://admin@example.org:p%40ss:w@" + host + "/api"} {
		if _, err := (&Client{URL: base}).ConnectedUsersInfo(context.Background()); err != nil {
			t.Fatalf("%s: %v", base, err)
		}
		if !f.auth || f.user != "admin@example.org" || f.pass != "p@ss:w" {
			t.Errorf("%s: basic auth %v %q %q, want admin@example.org p@ss:w", base, f.auth, f.user, f.pass)
		}
	}
}

func TestConnectedUsersInfoHTTPErrors(t *testing.T) {
	long := strings.Repeat("é", 300)
	tests := []struct {
		name, ctype, body string
		status            int
		code              int
		message, inError  string
	}{
		// The bodies ejabberd 23.01 sent (TestIntegrationErrors, and the
		// harness's ejabberd without mod_admin_extra).
		{"forbidden", "application/json", `{"status":"error","code":32,"message":"AccessRules: Account does not have the right to perform the operation."}`,
			403, 32, "AccessRules: Account does not have the right to perform the operation.", "api_permissions"},
		{"unauthorized", "application/json", `{"status":"error","code":10,"message":"You are not authorized to call this command."}`,
			401, 10, "You are not authorized to call this command.", "credentials"},
		{"no mod_admin_extra", "application/json", `"unknown_command"`, 400, 0, "unknown_command", "mod_admin_extra"},
		{"not routed", "text/html; charset=utf-8", "<?xml version='1.0'?>\n<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\" \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n<html xmlns='http://www.w3.org/1999/xhtml' xml:lang='en' lang='en'><head><meta http-equiv='Content-Type' content='text/html; charset=utf-8'/></head><body><h1>404 Not Found</h1></body></html>",
			404, 0, "", "404 Not Found; is mod_http_api"},
		{"bad request", "application/json", `"400 Bad Request"`, 400, 0, "", "400 Bad Request"},
		{"plain text, trimmed", "text/plain", "  proxy\n  says no \n", 502, 0, "proxy says no", "502 Bad Gateway: proxy says no"},
		{"long body, bounded", "text/plain", long, 500, 0, strings.Repeat("é", 100) + "…", "500 Internal Server Error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(&fakeAPI{status: tt.status, ctype: tt.ctype, body: tt.body})
			defer srv.Close()
			_, err := (&Client{URL: srv.URL + "/api"}).ConnectedUsersInfo(context.Background())
			var he *HTTPError
			if !errors.As(err, &he) {
				t.Fatalf("got %v, want an *HTTPError", err)
			}
			if he.StatusCode != tt.status || he.Code != tt.code || he.Message != tt.message {
				t.Errorf("got status %d code %d message %q, want %d %d %q", he.StatusCode, he.Code, he.Message, tt.status, tt.code, tt.message)
			}
			if !strings.Contains(err.Error(), tt.inError) || !strings.Contains(err.Error(), srv.URL+"/api/connected_users_info") {
				t.Errorf("error %q lacks %q or the URL", err, tt.inError)
			}
		})
	}
}

func TestConnectedUsersInfoErrorsHidePassword(t *testing.T) {
	srv := httptest.NewServer(&fakeAPI{status: 200, body: `[{"jid":"x"}]`})
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	tests := []struct{ name, url, want string }{
		{"answer does not parse", "http://u:hunter2@" + host + "/api", "want user@domain/resource"},
		{"URL does not parse", "http://u:hunter2@" + host + ":x/api", `"http://u:xxxxx@` + host + `:x/api"`},
		{"URL with a space", "http://u:hunt er2@" + host + "/api", "invalid userinfo"},
		{"not HTTP", "ftp://u:hunter2@" + host + "/api", "ftp://u:xxxxx@"},
		{"no host", "/api", "want http://host:port/path"},
		{"refused", "http://u:hunter2@127.0.0.1:1/api", "http://u:xxxxx@127.0.0.1:1/api/connected_users_info: dial tcp 127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := (&Client{URL: tt.url}).ConnectedUsersInfo(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
			if err != nil && (strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "hunt er2")) {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

func TestConnectedUsersInfoTimeout(t *testing.T) {
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-stop }))
	defer srv.Close()
	defer close(stop)
	c := &Client{URL: srv.URL, HTTP: &http.Client{Timeout: 50 * time.Millisecond}}
	began := time.Now()
	_, err := c.ConnectedUsersInfo(context.Background())
	if err == nil || time.Since(began) > 5*time.Second {
		t.Errorf("client timeout: %v after %v", err, time.Since(began))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = (&Client{URL: srv.URL}).ConnectedUsersInfo(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("context deadline: got %v, want context.DeadlineExceeded", err)
	}
}

func TestRedactRaw(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://u:pw@h:x/api", `"http://u:xxxxx@h:x/api"`},
		{"http://a@b:pw@h:x/api?q=@", `"http://a@b:xxxxx@h:x/api?q=@"`},
		{"http://u@h:x/", `"http://u@h:x/"`},
		{"http://h:x/a@b", `"http://h:x/a@b"`},
		{"u:pw@h", `"u:xxxxx@h"`},
	}
	for _, tt := range tests {
		if got := redactRaw(tt.in); got != tt.want {
			t.Errorf("redactRaw(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
