package c2s

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// SASL mechanism names accepted in Config.Mechanism.
const (
	MechPlain     = "PLAIN"
	MechSCRAMSHA1 = "SCRAM-SHA-1"
)

// maxSCRAMIterations bounds the work a server can ask of us.
const maxSCRAMIterations = 1 << 20

// plainResponse is the initial response of SASL PLAIN (RFC 4616) with no
// authorization identity.
func plainResponse(user, password string) []byte {
	return []byte("\x00" + user + "\x00" + password)
}

// scram is the client side of SCRAM-SHA-1 (RFC 5802) without channel
// binding. The password is used as given (no SASLprep), which is right for
// ASCII passwords.
type scram struct {
	user, password string
	cnonce         string
	clientFirst    string // client-first-message-bare
	serverSig      []byte // expected server signature, set by final
}

func newSCRAM(user, password string) (*scram, error) {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("scram nonce: %w", err)
	}
	return &scram{user: user, password: password, cnonce: base64.RawStdEncoding.EncodeToString(b)}, nil
}

// first returns the client-first-message.
func (s *scram) first() []byte {
	name := strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s.user)
	s.clientFirst = "n=" + name + ",r=" + s.cnonce
	return []byte("n,," + s.clientFirst)
}

// final answers the server-first-message with the client-final-message.
func (s *scram) final(serverFirst []byte) ([]byte, error) {
	attrs := scramAttrs(string(serverFirst))
	if _, ok := attrs['m']; ok {
		return nil, errors.New("scram: server requires an unsupported extension")
	}
	nonce, salt64, iters := attrs['r'], attrs['s'], attrs['i']
	if !strings.HasPrefix(nonce, s.cnonce) || len(nonce) == len(s.cnonce) {
		return nil, errors.New("scram: server nonce does not extend the client nonce")
	}
	salt, err := base64.StdEncoding.DecodeString(salt64)
	if err != nil || len(salt) == 0 {
		return nil, errors.New("scram: bad salt")
	}
	n, err := strconv.Atoi(iters)
	if err != nil || n < 1 || n > maxSCRAMIterations {
		return nil, fmt.Errorf("scram: bad iteration count %q", iters)
	}
	salted, err := pbkdf2.Key(sha1.New, s.password, salt, n, sha1.Size)
	if err != nil {
		return nil, fmt.Errorf("scram: %w", err)
	}
	clientKey := hmacSHA1(salted, "Client Key")
	stored := sha1.Sum(clientKey)
	withoutProof := "c=biws,r=" + nonce
	authMsg := s.clientFirst + "," + string(serverFirst) + "," + withoutProof
	sig := hmacSHA1(stored[:], authMsg)
	proof := make([]byte, len(clientKey))
	for i := range clientKey {
		proof[i] = clientKey[i] ^ sig[i]
	}
	s.serverSig = hmacSHA1(hmacSHA1(salted, "Server Key"), authMsg)
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

// verify checks the server-final-message.
func (s *scram) verify(serverFinal []byte) error {
	attrs := scramAttrs(string(serverFinal))
	if e, ok := attrs['e']; ok {
		return fmt.Errorf("scram: server error %q", e)
	}
	v, err := base64.StdEncoding.DecodeString(attrs['v'])
	if err != nil || s.serverSig == nil || subtle.ConstantTimeCompare(v, s.serverSig) != 1 {
		return errors.New("scram: server signature does not match")
	}
	return nil
}

func hmacSHA1(key []byte, msg string) []byte {
	h := hmac.New(sha1.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// scramAttrs splits "a=1,b=2" into a map keyed by the attribute letter.
func scramAttrs(msg string) map[byte]string {
	m := make(map[byte]string)
	for _, f := range strings.Split(msg, ",") {
		if len(f) >= 2 && f[1] == '=' {
			m[f[0]] = f[2:]
		}
	}
	return m
}
