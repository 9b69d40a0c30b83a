package testserver

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	if got := tail(path, 3); got != "" {
		t.Errorf("tail of a missing file = %q, want empty", got)
	}
	tests := []struct {
		content string
		n       int
		want    string
	}{
		{"", 3, ""},
		{"a\nb\nc\nd\n", 2, "c\nd\n"},
		{"a\nb", 5, "a\nb\n"},
		{"a\nb\n\n\n", 1, "b\n"},
	}
	for _, tt := range tests {
		if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := tail(path, tt.n); got != tt.want {
			t.Errorf("tail(%q, %d) = %q, want %q", tt.content, tt.n, got, tt.want)
		}
	}
}

func TestBindError(t *testing.T) {
	s := &Server{LogPath: filepath.Join(t.TempDir(), "prosody.log")}
	if err := s.bindError(0); err != nil {
		t.Errorf("bindError without a log = %v, want nil", err)
	}
	old := "Nov 21 10:00:00 portmanager\terror\tFailed to open server port 5222 on 127.0.0.1, address already in use\n"
	fresh := "Nov 21 10:01:00 startup\tinfo\tHello and welcome to Prosody version 0.12.3\n"
	if err := os.WriteFile(s.LogPath, []byte(old+fresh), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.bindError(int64(len(old))); err != nil {
		t.Errorf("bindError after an older run's failure = %v, want nil", err)
	}
	err := s.bindError(0)
	if !errors.Is(err, errAddrInUse) || !strings.Contains(err.Error(), "port 5222") {
		t.Errorf("bindError = %v, want errAddrInUse naming port 5222", err)
	}
}

func TestLogSince(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prosody.log")
	if err := os.WriteFile(path, []byte("old "+shutdownBug+"\nnew lines\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if !logSince(path, 0, shutdownBug) {
		t.Error("not found from the start")
	}
	if logSince(path, int64(len("old "+shutdownBug)), shutdownBug) {
		t.Error("found before the offset")
	}
	if logSince(filepath.Join(t.TempDir(), "none"), 0, "x") {
		t.Error("found in a missing file")
	}
}
