package presence

// MalformedError is input that cannot be used at all; Reason is a short
// metric label ("jid", "type", "xml").
type MalformedError struct {
	Reason string
	Err    error
}

// Error describes the malformed input.
func (e *MalformedError) Error() string {
	if e.Err == nil {
		return "malformed " + e.Reason
	}
	return "malformed " + e.Reason + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *MalformedError) Unwrap() error { return e.Err }
