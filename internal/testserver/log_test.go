package testserver

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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

// TestStopWakesProsodyAfterShutdown stands a shell script in for a Prosody
// that logs its shutdown on SIGTERM and then sleeps in its main loop until
// some signal wakes it (see wakeAfterShutdown): Stop must wake it and see
// it exit, not kill it after stopTimeout and fail.
func TestStopWakesProsodyAfterShutdown(t *testing.T) {
	dir := t.TempDir()
	s := &Server{Kind: Prosody, Dir: dir, LogPath: filepath.Join(dir, "prosody.log")}
	script := `trap 'printf "Dec 04 21:14:37 general\tinfo\tShutdown complete\n" >> prosody.log' TERM
trap 'echo woken > woken; exit 0' USR1
: > ready
while :; do sleep 0.05; done`
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.proc = startedProcess(cmd)
	t.Cleanup(func() { _ = s.Kill() })
	for !exists(filepath.Join(dir, "ready")) {
		if s.proc.exited() {
			t.Fatalf("the stand-in exited before it was ready: %v", s.proc.waitErr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if !exists(filepath.Join(dir, "woken")) {
		t.Error("the stand-in exited without being sent SIGUSR1")
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
