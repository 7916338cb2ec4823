package api

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// TLSFiles are the --tls-* flags of `run`.
type TLSFiles struct {
	CertFile string // PEM certificate chain, leaf first
	KeyFile  string // PEM private key; must not be readable by group/others
	ClientCA string // optional PEM CA bundle: require client certificates it signed (mTLS)
}

// LoadTLS reads the certificate, key and optional client CA and returns
// the server's TLS configuration (TLS 1.2 or newer). Every failure says
// which file and what to do. The token check stays on top of TLS (and of
// mTLS): a client certificate proves the client, the token what it may
// read, and the token no longer crosses the network in the clear.
func LoadTLS(f TLSFiles) (*tls.Config, error) {
	if f.CertFile == "" && f.KeyFile == "" {
		if f.ClientCA != "" {
			return nil, errors.New("--tls-client-ca needs --tls-cert-file and --tls-key-file: client certificates are checked in a TLS handshake")
		}
		return nil, nil
	}
	if f.CertFile == "" || f.KeyFile == "" {
		return nil, errors.New("--tls-cert-file and --tls-key-file go together: give both (PEM certificate and its private key)")
	}
	certPEM, err := readTLSFile("--tls-cert-file", f.CertFile)
	if err != nil {
		return nil, err
	}
	if err := SecretFileMode("--tls-key-file", f.KeyFile); err != nil {
		return nil, err
	}
	keyPEM, err := readTLSFile("--tls-key-file", f.KeyFile)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert-file %s with --tls-key-file %s: %v: give a PEM certificate and the PEM private key that belongs to it", f.CertFile, f.KeyFile, err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
	}
	if f.ClientCA != "" {
		caPEM, err := readTLSFile("--tls-client-ca", f.ClientCA)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("--tls-client-ca %s: no PEM certificate in it: give the CA certificate(s) that sign the clients' certificates", f.ClientCA)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

func readTLSFile(flag, path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s %s: no such file: check the path", flag, path)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("%s %s: permission denied: make it readable by the user bwtracker runs as", flag, path)
	case err != nil:
		return nil, fmt.Errorf("%s %s: %w", flag, path, err)
	}
	return b, nil
}

// SecretFileMode refuses a secret (private key, token file) that group or
// others may read, with the command that fixes it.
func SecretFileMode(flag, path string) error {
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s %s: no such file: check the path", flag, path)
		}
		return fmt.Errorf("%s %s: %w", flag, path, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s %s: not a regular file", flag, path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s %s: mode %04o lets group or others read a secret: run `chmod 600 %s`", flag, path, perm, path)
	}
	return nil
}
