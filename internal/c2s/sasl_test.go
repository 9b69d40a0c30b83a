package c2s

import (
	"encoding/base64"
	"strings"
	"testing"
)

// TestSCRAMRFC5802 runs the example exchange of RFC 5802 §5.
func TestSCRAMRFC5802(t *testing.T) {
	s := &scram{user: "user", password: "pencil", cnonce: "fyko+d2lbbFgONRv9qkxdawL"}
	if got, want := string(s.first()), "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"; got != want {
		t.Fatalf("client-first = %q, want %q", got, want)
	}
	final, err := s.final([]byte("r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(final), "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="; got != want {
		t.Fatalf("client-final = %q, want %q", got, want)
	}
	if err := s.verify([]byte("v=rmF9pqV8S7suAoZWja4dJRkFsKQ=")); err != nil {
		t.Fatalf("verify good server signature: %v", err)
	}
	if err := s.verify([]byte("v=" + base64.StdEncoding.EncodeToString(make([]byte, 20)))); err == nil {
		t.Fatal("verify accepted a wrong server signature")
	}
	if err := s.verify([]byte("e=invalid-proof")); err == nil || !strings.Contains(err.Error(), "invalid-proof") {
		t.Fatalf("verify e=: got %v", err)
	}
}

func TestSCRAMRejectsBadServerFirst(t *testing.T) {
	tests := []struct{ name, msg string }{
		{"nonce not extended", "r=fyko,s=QSXCR+Q6sek8bf92,i=4096"},
		{"nonce equal", "r=abc,s=QSXCR+Q6sek8bf92,i=4096"},
		{"nonce foreign", "r=xyzabc123,s=QSXCR+Q6sek8bf92,i=4096"},
		{"bad salt", "r=abc123,s=!!!,i=4096"},
		{"empty salt", "r=abc123,s=,i=4096"},
		{"zero iterations", "r=abc123,s=QSXCR+Q6sek8bf92,i=0"},
		{"huge iterations", "r=abc123,s=QSXCR+Q6sek8bf92,i=99999999"},
		{"no iterations", "r=abc123,s=QSXCR+Q6sek8bf92"},
		{"mandatory extension", "m=ext,r=abc123,s=QSXCR+Q6sek8bf92,i=4096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &scram{user: "u", password: "p", cnonce: "abc"}
			s.first()
			if _, err := s.final([]byte(tt.msg)); err == nil {
				t.Fatalf("final(%q) accepted", tt.msg)
			}
		})
	}
}

func TestSCRAMEscapesUsername(t *testing.T) {
	s := &scram{user: "a=b,c", cnonce: "n"}
	if got, want := string(s.first()), "n,,n=a=3Db=2Cc,r=n"; got != want {
		t.Fatalf("first = %q, want %q", got, want)
	}
}

func TestPlainResponse(t *testing.T) {
	if got, want := string(plainResponse("alice", "pw")), "\x00alice\x00pw"; got != want {
		t.Fatalf("plain = %q, want %q", got, want)
	}
}
