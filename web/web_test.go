package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pubpresence/pubpresence/metrics"
	"github.com/pubpresence/pubpresence/status"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b)
}

func TestEndpoints(t *testing.T) {
	m := metrics.New("test")
	st := &status.Tracker{}
	h := Handler(m, st, nil)

	if code, _ := get(t, h, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz %d", code)
	}
	if code, body := get(t, h, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "not connected") {
		t.Errorf("/readyz disconnected: %d %q", code, body)
	}
	for _, p := range []status.Phase{status.Nodes, status.Discovering, status.Converging} {
		st.SetPhase(p)
		if code, body := get(t, h, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "init ("+p.String()+")") {
			t.Errorf("/readyz in %s: %d %q", p, code, body)
		}
	}
	st.SetPhase(status.Online)
	if code, _ := get(t, h, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz online: %d", code)
	}
	st.SetFailing(true)
	if code, body := get(t, h, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "failing") {
		t.Errorf("/readyz online with the actual node failing: %d %q", code, body)
	}
	st.SetFailing(false)
	st.SetPhase(status.Standby)
	if code, body := get(t, h, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "standby") {
		t.Errorf("/readyz in standby: %d %q", code, body)
	}
	st.SetPhase(status.Online)
	if code, _ := get(t, h, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz online again: %d", code)
	}
	// Several streams: the answer says which are up, and stays ready
	// while one is.
	st.SetAddresses([]string{"node1:5347", "node2:5347"})
	st.SetStreamUp(0, true)
	st.SetStreamUp(1, true)
	if code, body := get(t, h, "/readyz"); code != http.StatusOK || body != "online (2 of 2 streams up)\n" {
		t.Errorf("/readyz online, both streams up: %d %q", code, body)
	}
	st.SetStreamUp(0, false)
	if code, body := get(t, h, "/readyz"); code != http.StatusOK || body != "online (1 of 2 streams up; down: node1:5347)\n" {
		t.Errorf("/readyz online, stream 0 down: %d %q", code, body)
	}
	st.SetPhase(status.Connecting)
	st.SetStreamUp(1, false)
	if code, body := get(t, h, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "not connected (0 of 2 streams up; down: node1:5347, node2:5347)") {
		t.Errorf("/readyz with no stream up: %d %q", code, body)
	}
	st.SetPhase(status.Online)
	m.SetPhase(status.Online)
	code, body := get(t, h, "/metrics")
	for _, want := range []string{`pubpresence_state{state="online"} 1`, `pubpresence_state{state="init"} 0`, "go_goroutines", "process_"} {
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q (status %d)", want, code)
		}
	}
	if code, _ := get(t, h, "/nope"); code != http.StatusNotFound {
		t.Errorf("/nope %d", code)
	}
}
