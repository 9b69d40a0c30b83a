package xmpp

import (
	"errors"
	"fmt"
	"testing"
)

const st = " xmlns='" + NSStanzas + "'"

func TestParseError(t *testing.T) {
	tests := []struct {
		name  string
		inner string
		want  StanzaError
	}{
		{"pubsub precondition",
			"<error type='cancel'><conflict" + st + "/><text" + st + ">Field does not match: max_items</text>" +
				"<precondition-not-met xmlns='" + NSPubsubErrors + "'/></error>",
			StanzaError{Type: "cancel", Condition: ErrConflict, App: "precondition-not-met", Text: "Field does not match: max_items"}},
		{"plain condition",
			"<error type='auth'><forbidden" + st + "/></error>",
			StanzaError{Type: "auth", Condition: ErrForbidden}},
		{"request echoed before the error",
			"<pubsub xmlns='" + NSPubsub + "'><publish node='n'><item/></publish></pubsub>" +
				"<error type='modify'><bad-request" + st + "/><text" + st + " xml:lang='en'>invalid item</text></error>",
			StanzaError{Type: "modify", Condition: ErrBadRequest, Text: "invalid item"}},
		{"component unavailable (Prosody bounce)",
			"<error type='wait'><remote-server-timeout" + st + "/><text" + st + ">Component unavailable</text>" +
				"<not-connected xmlns='xmpp:prosody.im/protocol/component'/></error>",
			StanzaError{Type: "wait", Condition: ErrRemoteServerTimeout, App: "not-connected", Text: "Component unavailable"}},
		{"app condition first (ejabberd)",
			`<error type="modify"><invalid-payload xmlns="` + NSPubsubErrors + `"/><bad-request xmlns="` + NSStanzas + `"/></error>`,
			StanzaError{Type: "modify", Condition: ErrBadRequest, App: "invalid-payload"}},
		{"first error only",
			"<error type='auth'><forbidden" + st + "/></error><error type='cancel'><conflict" + st + "/></error>",
			StanzaError{Type: "auth", Condition: ErrForbidden}},
		{"text only", "<error><text" + st + ">only text</text></error>", StanzaError{Condition: ErrUndefinedCondition, Text: "only text"}},
		{"no error", "<pubsub xmlns='" + NSPubsub + "'/>", StanzaError{Condition: ErrUndefinedCondition}},
		{"empty", "", StanzaError{Condition: ErrUndefinedCondition}},
		{"truncated", "<error type='cancel'><conflict" + st + "/>", StanzaError{Condition: ErrUndefinedCondition}},
		{"not XML", "text only & <b>", StanzaError{Condition: ErrUndefinedCondition}},
	}
	for _, tt := range tests {
		got := ParseError([]byte(tt.inner))
		if *got != tt.want {
			t.Errorf("%s: ParseError = %+v, want %+v", tt.name, *got, tt.want)
		}
	}
}

func TestStanzaErrorIs(t *testing.T) {
	var err error = fmt.Errorf("create node n: %w", &StanzaError{Type: "cancel", Condition: ErrConflict})
	if !errors.Is(err, ErrConflict) {
		t.Error("errors.Is(wrapped conflict, ErrConflict) = false")
	}
	if errors.Is(err, ErrItemNotFound) || errors.Is(err, ErrStreamConflict) {
		t.Error("a conflict matches another condition")
	}
	if errors.Is(errors.New("conflict"), ErrConflict) {
		t.Error("a plain error matches ErrConflict")
	}
	var se *StanzaError
	if !errors.As(err, &se) || se.Type != "cancel" {
		t.Errorf("errors.As = %+v", se)
	}
	if got := ConditionOf(err); got != ErrConflict {
		t.Errorf("ConditionOf = %q", got)
	}
	if got := ConditionOf(errors.New("x")); got != "" {
		t.Errorf("ConditionOf(other) = %q", got)
	}
	if got := ConditionOf(nil); got != "" {
		t.Errorf("ConditionOf(nil) = %q", got)
	}
	if got, want := (&StanzaError{Type: "cancel", Condition: ErrConflict, App: "precondition-not-met", Text: "t"}).Error(),
		"xmpp error cancel/conflict (precondition-not-met): t"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if ErrItemNotFound.Error() != "item-not-found" || ErrStreamHostUnknown.Error() != "host-unknown" {
		t.Error("a condition's Error is not its name")
	}
}

func TestStanzaErrorXML(t *testing.T) {
	e := &StanzaError{Type: "cancel", Condition: ErrServiceUnavailable}
	want := "<error type='cancel'><service-unavailable" + st + "/></error>"
	if got := string(e.AppendXML(nil)); got != want {
		t.Errorf("AppendXML = %s, want %s", got, want)
	}
	e = &StanzaError{Type: "modify", Condition: ErrBadRequest, Text: "a<'b"}
	back := ParseError(e.AppendXML(nil))
	if *back != *e {
		t.Errorf("ParseError(AppendXML(%+v)) = %+v", *e, *back)
	}
}

func TestParseStreamError(t *testing.T) {
	const ss = " xmlns='" + NSStreams + "'"
	tests := []struct {
		inner string
		want  StreamError
	}{
		{"<conflict" + ss + "/><text" + ss + ">Replaced by new connection</text>", StreamError{Condition: ErrStreamConflict, Text: "Replaced by new connection"}},
		{"<host-unknown" + ss + "/>", StreamError{Condition: ErrStreamHostUnknown}},
		{"<system-shutdown" + ss + "/><app xmlns='urn:x'/>", StreamError{Condition: ErrStreamSystemShutdown}},
		{"<bogus/>", StreamError{Condition: ErrStreamUndefinedCondition}},
		{"", StreamError{Condition: ErrStreamUndefinedCondition}},
		{"<not-authorized" + ss + "/><unclosed>", StreamError{Condition: ErrStreamNotAuthorized}},
	}
	for _, tt := range tests {
		if got := ParseStreamError([]byte(tt.inner)); *got != tt.want {
			t.Errorf("ParseStreamError(%q) = %+v, want %+v", tt.inner, *got, tt.want)
		}
	}
	err := fmt.Errorf("login: %w", &StreamError{Condition: ErrStreamConflict, Text: "x"})
	if !errors.Is(err, ErrStreamConflict) || errors.Is(err, ErrConflict) || errors.Is(err, ErrStreamHostUnknown) {
		t.Error("StreamError.Is matches the wrong conditions")
	}
	if got := err.Error(); got != "login: stream error conflict: x" {
		t.Errorf("Error() = %q", got)
	}
}
