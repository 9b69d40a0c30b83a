package testserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// certValidity is how long the certificates of WithTLS are valid. New and
// Start make fresh ones every time. ejabberd logs a warning for a
// certificate that expires within 7 days: keep it well above that.
const certValidity = 30 * 24 * time.Hour

// WithTLS makes the server offer STARTTLS on c2s and require it before
// authentication, as production deployments do. The harness makes a fresh
// CA and a server certificate for Domain and the WithHost domains, and for
// their subdomains (ECDSA P-256, valid for 30 days) in Dir/tls; TLSConfig
// and CAFile give clients the CA. The component and harness listeners stay plain
// (XEP-0114 has no TLS).
func WithTLS() Option { return func(o *options) { o.tls = true } }

// tlsFiles are the PEM files WithTLS writes.
type tlsFiles struct {
	ca, cert, key string // CA certificate, server certificate, server key
	pool          *x509.CertPool
}

// TLSConfig returns a new client TLS config for c2s connections to a
// WithTLS server: it trusts only the server's private CA (no system roots)
// and expects a certificate for Domain, which also names the WithHost
// domains. Without WithTLS it returns nil, which c2s.Config.TLS reads as
// plain TCP.
func (s *Server) TLSConfig() *tls.Config {
	if s.tls == nil {
		return nil
	}
	return &tls.Config{RootCAs: s.tls.pool, ServerName: s.Domain, MinVersion: tls.VersionTLS12}
}

// writeTLSFiles makes a CA and a server certificate for names, signed by
// it, and writes them into dir/tls: ca.crt, server.crt and server.key
// (SEC 1, mode 0600: the server runs as the test's user and reads it).
func writeTLSFiles(dir string, names []string) (*tlsFiles, error) {
	tdir := filepath.Join(dir, "tls")
	if err := os.MkdirAll(tdir, 0o700); err != nil {
		return nil, fmt.Errorf("tls dir: %w", err)
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("tls: CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "pubpresence test CA", Organization: []string{"pubpresence integration harness"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("tls: CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("tls: CA certificate: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("tls: server key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: names[0]},
		DNSNames:              names,
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("tls: server certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("tls: server key: %w", err)
	}
	f := &tlsFiles{
		ca:   filepath.Join(tdir, "ca.crt"),
		cert: filepath.Join(tdir, "server.crt"),
		key:  filepath.Join(tdir, "server.key"),
		pool: x509.NewCertPool(),
	}
	f.pool.AddCert(ca)
	for _, w := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{f.ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644},
		{f.cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644},
		{f.key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600},
	} {
		// Remove first: WriteFile keeps the mode of an existing file.
		if err := os.Remove(w.path); err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("tls: %w", err)
		}
		if err := os.WriteFile(w.path, w.data, w.mode); err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
	}
	return f, nil
}

// serial returns a random 128-bit certificate serial number.
func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}
