package presence

// CleanText makes a status text from another source (a server's HTTP API)
// what a parsed presence's Text is: trimmed, valid UTF-8, at most MaxText
// bytes.
func CleanText(s string) string {
	var u Update
	return u.cleanText([]byte(s))
}
