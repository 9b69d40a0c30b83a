package xmpp

import (
	"errors"
	"strings"
	"testing"
)

func TestParseJID(t *testing.T) {
	long := strings.Repeat("a", 1024)
	tests := []struct {
		in         string
		want       JID
		bare, full string
		bad        bool
	}{
		{in: "alice@example.org/laptop", want: JID{"alice", "example.org", "laptop"}, bare: "alice@example.org", full: "alice@example.org/laptop"},
		{in: "example.org", want: JID{"", "example.org", ""}, bare: "example.org", full: "example.org"},
		{in: "alice@example.org", want: JID{"alice", "example.org", ""}, bare: "alice@example.org", full: "alice@example.org"},
		{in: "example.org/res", want: JID{"", "example.org", "res"}, bare: "example.org", full: "example.org/res"},
		{in: "Alice@Example.ORG/LapTop", want: JID{"alice", "example.org", "LapTop"}, bare: "alice@example.org", full: "alice@example.org/LapTop"},
		{in: "ÄLICE@EXAMPLE.org/x", want: JID{"älice", "example.org", "x"}, bare: "älice@example.org", full: "älice@example.org/x"},
		{in: "alice@example.org./r", want: JID{"alice", "example.org", "r"}, bare: "alice@example.org", full: "alice@example.org/r"},
		{in: "a@b/res/with/slashes@and space", want: JID{"a", "b", "res/with/slashes@and space"}, bare: "a@b", full: "a@b/res/with/slashes@and space"},
		{in: "a@[::1]/r", want: JID{"a", "[::1]", "r"}, bare: "a@[::1]", full: "a@[::1]/r"},
		{in: "a@" + strings.Repeat("d", 1023), want: JID{"a", strings.Repeat("d", 1023), ""}, bare: "a@" + strings.Repeat("d", 1023), full: "a@" + strings.Repeat("d", 1023)},
		{in: "", bad: true},
		{in: "@example.org", bad: true},
		{in: "alice@", bad: true},
		{in: "alice@/r", bad: true},
		{in: "/r", bad: true},
		{in: "alice@example.org/", bad: true},
		{in: ".", bad: true},
		{in: "..", bad: true},
		{in: "a@..", bad: true},
		{in: "a@b..c", bad: true},
		{in: "a@.b", bad: true},
		{in: "a@b../r", bad: true},
		{in: long + "@example.org", bad: true},
		{in: "a@" + long, bad: true},
		{in: "a@b/" + long, bad: true},
		{in: "a\xff@b", bad: true},
		{in: "a@b/\xff", bad: true},
		{in: "a b@example.org", bad: true},
		{in: "a\u00a0b@example.org", bad: true},
		{in: "a\"b@example.org", bad: true},
		{in: "a&b@example.org", bad: true},
		{in: "a'b@example.org", bad: true},
		{in: "a:b@example.org", bad: true},
		{in: "a<b@example.org", bad: true},
		{in: "a>b@example.org", bad: true},
		{in: "a@b@example.org", bad: true},
		{in: "a@exa mple.org", bad: true},
		{in: "a@exa\tmple.org", bad: true},
		{in: "a@b/x\x00y", bad: true},
		{in: "a@b/x\ny", bad: true},
		{in: "a@b/x\uFFFEy", bad: true},
		{in: "a\uFFFF@b/x", bad: true},
	}
	for _, tt := range tests {
		got, err := ParseJID(tt.in)
		if tt.bad {
			var je *JIDError
			if !errors.As(err, &je) {
				t.Errorf("ParseJID(%q) = %+v, %v; want a *JIDError", tt.in, got, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseJID(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want || got.Bare() != tt.bare || got.Full() != tt.full || got.String() != tt.full {
			t.Errorf("ParseJID(%q) = %+v (bare %q full %q), want %+v (bare %q full %q)", tt.in, got, got.Bare(), got.Full(), tt.want, tt.bare, tt.full)
		}
		// Normalised output parses to itself.
		again, err := ParseJID(got.Full())
		if err != nil || again != got {
			t.Errorf("ParseJID(%q) = %+v, %v; want %+v", got.Full(), again, err, got)
		}
	}
}

func TestParseJIDErrorMessage(t *testing.T) {
	_, err := ParseJID(strings.Repeat("x", 5000) + "@")
	if err == nil || len(err.Error()) > 200 || !strings.Contains(err.Error(), "empty domain") {
		t.Errorf("error = %v; want a short message naming the problem", err)
	}
}

func TestBareOf(t *testing.T) {
	for in, want := range map[string]string{
		"a@b/r":     "a@b",
		"a@b":       "a@b",
		"b/r/s":     "b",
		"a@b/r@x/y": "a@b",
		"":          "",
	} {
		if got := BareOf(in); got != want {
			t.Errorf("BareOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNormalFullBare(t *testing.T) {
	for _, tt := range []struct{ in, full, bare string }{
		{"alice@example.org/r", "alice@example.org/r", "alice@example.org"},
		{"Alice@Example.org/R", "alice@example.org/R", "alice@example.org"},
		{"example.org", "example.org", "example.org"},
		{"example.org./r", "example.org/r", "example.org"},
		{"a@b/c/d", "a@b/c/d", "a@b"},
	} {
		full, err := NormalFull(tt.in)
		if err != nil || full != tt.full {
			t.Errorf("NormalFull(%q) = %q, %v; want %q", tt.in, full, err, tt.full)
		}
		bare, err := NormalBare(tt.in)
		if err != nil || bare != tt.bare {
			t.Errorf("NormalBare(%q) = %q, %v; want %q", tt.in, bare, err, tt.bare)
		}
	}
	for _, bad := range []string{"", "a@", "@b", "a@b/"} {
		if s, err := NormalFull(bad); err == nil {
			t.Errorf("NormalFull(%q) = %q", bad, s)
		}
		if s, err := NormalBare(bad); err == nil {
			t.Errorf("NormalBare(%q) = %q", bad, s)
		}
	}
	// What is normal already is not copied.
	if n := testing.AllocsPerRun(100, func() {
		_, _ = NormalFull("alice@example.org/laptop")
		_, _ = NormalBare("alice@example.org/laptop")
	}); n != 0 {
		t.Errorf("%v allocations for normal JIDs, want 0", n)
	}
}

func TestFullIn(t *testing.T) {
	for _, in := range []string{"alice@example.org/r", "Alice@Example.org/R", "example.org", "example.org./r", "a@b/c/d", "a@b"} {
		j, err := ParseJID(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := j.FullIn(in); got != j.Full() {
			t.Errorf("FullIn(%q) = %q, want %q", in, got, j.Full())
		}
		if got := j.FullIn("other@example.org/x"); got != j.Full() {
			t.Errorf("FullIn(another JID) = %q, want %q", got, j.Full())
		}
	}
	j, _ := ParseJID("alice@example.org/laptop")
	if n := testing.AllocsPerRun(100, func() { _ = j.FullIn("alice@example.org/laptop") }); n != 0 {
		t.Errorf("%v allocations for a normal JID, want 0", n)
	}
}
