package c2s

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha1"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
)

// FuzzSCRAM feeds arbitrary server-first and server-final messages to the
// SCRAM-SHA-1 client. It must never panic; it must refuse a server-first
// that does not extend its nonce or carries a mandatory extension; what it
// answers must be a proof that a server holding the password accepts; and
// it must accept a server-final only when it carries the right signature.
func FuzzSCRAM(f *testing.F) {
	const (
		cnonce = "fyko+d2lbbFgONRv9qkxdawL"
		// RFC 5802 §5.
		rfcFirst = "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
		rfcFinal = "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
	)
	f.Add(rfcFirst, "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=")
	// The shape Prosody and ejabberd send (with i=4096; small counts keep
	// the fuzzing fast, larger ones are skipped).
	f.Add("r=fyko+d2lbbFgONRv9qkxdawLa6c8a0b3-22e1-4c5b-8d5e-6c1d0f0e4b77,s=9Ff3pX+1fOdS0aN2y3XbUg==,i=16", "v=AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	f.Add("s=QSXCR+Q6sek8bf92,i=1,r=fyko+d2lbbFgONRv9qkxdawLx,x=ignored", "e=invalid-proof")
	f.Add("r=fyko+d2lbbFgONRv9qkxdawL,s=QSXCR+Q6sek8bf92,i=1", "")                  // nonce not extended
	f.Add("r=other,s=QSXCR+Q6sek8bf92,i=1", "v=")                                   // foreign nonce
	f.Add("m=ext,r=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf92,i=1", "v=x")        // mandatory extension
	f.Add("r=fyko+d2lbbFgONRv9qkxdawLx,s=!!!,i=1", "v=rmF9pqV8S7suAoZWja4dJRkFsKQ") // bad salt
	f.Add("r=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf92,i=0", ",,=,v")            // bad count
	f.Add("r=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf92,i=99999999999", "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=,e=x")
	f.Fuzz(func(t *testing.T, serverFirst, serverFinal string) {
		s := &scram{user: "user", password: "pencil", cnonce: cnonce}
		clientFirst := s.first()
		if string(clientFirst) != "n,,n=user,r="+cnonce {
			t.Fatalf("client-first %q", clientFirst)
		}
		if s.verify([]byte(serverFinal)) == nil {
			t.Fatal("server-final verified before any server-first")
		}
		attrs := scramAttrs(serverFirst)
		iters, err := strconv.Atoi(attrs['i'])
		if err == nil && iters > 256 && iters <= maxSCRAMIterations && serverFirst != rfcFirst {
			t.Skip("iteration count too slow for fuzzing")
		}
		out, err := s.final([]byte(serverFirst))
		if err != nil {
			if out != nil || s.serverSig != nil {
				t.Fatalf("answer %q, signature %x with error %v", out, s.serverSig, err)
			}
			return
		}
		if serverFirst == rfcFirst && string(out) != rfcFinal {
			t.Fatalf("RFC 5802 example: client-final %q, want %q", out, rfcFinal)
		}
		nonce := attrs['r']
		if _, ok := attrs['m']; ok || !strings.HasPrefix(nonce, cnonce) || nonce == cnonce {
			t.Fatalf("accepted server-first %q", serverFirst)
		}
		withoutProof, proof64, ok := strings.Cut(string(out), ",p=")
		if !ok || withoutProof != "c=biws,r="+nonce {
			t.Fatalf("client-final %q", out)
		}
		proof, err := base64.StdEncoding.DecodeString(proof64)
		if err != nil || len(proof) != sha1.Size {
			t.Fatalf("proof %q: %v", proof64, err)
		}
		// Check the proof as the server does (RFC 5802 §3), and the signature
		// the server will send.
		salt, _ := base64.StdEncoding.DecodeString(attrs['s'])
		salted, err := pbkdf2.Key(sha1.New, "pencil", salt, iters, sha1.Size)
		if err != nil {
			t.Fatal(err)
		}
		mac := func(key []byte, msg string) []byte {
			h := hmac.New(sha1.New, key)
			h.Write([]byte(msg))
			return h.Sum(nil)
		}
		authMsg := "n=user,r=" + cnonce + "," + serverFirst + "," + withoutProof
		storedKey := sha1.Sum(mac(salted, "Client Key"))
		clientSig := mac(storedKey[:], authMsg)
		clientKey := make([]byte, sha1.Size)
		for i := range clientKey {
			clientKey[i] = proof[i] ^ clientSig[i]
		}
		if sha1.Sum(clientKey) != storedKey {
			t.Fatalf("a server would refuse the proof of %q", out)
		}
		serverSig := mac(mac(salted, "Server Key"), authMsg)
		if err := s.verify([]byte("v=" + base64.StdEncoding.EncodeToString(serverSig))); err != nil {
			t.Fatalf("the right server signature is refused: %v", err)
		}
		fin := scramAttrs(serverFinal)
		v, verr := base64.StdEncoding.DecodeString(fin['v'])
		_, hasErr := fin['e']
		right := !hasErr && verr == nil && bytes.Equal(v, serverSig)
		if err := s.verify([]byte(serverFinal)); (err == nil) != right {
			t.Fatalf("verify(%q) = %v, but the signature is right: %v", serverFinal, err, right)
		}
	})
}
