package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The real daemon serves HTTPS with a certificate the test makes, keeps
// the token check on top, warns that --auth-token on the command line is
// visible in ps, and reads its key before dropping privileges.
func TestDaemonHTTPS(t *testing.T) {
	dir := t.TempDir()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bwtracker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(k)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600)

	const token = "https-test-token-0123456789"
	const listen = "127.0.0.1:19314"
	d := startDaemon(t, "1s", "--listen", listen, "--auth-token", token, "--tls-cert-file", certFile, "--tls-key-file", keyFile)
	defer d.stop()
	if !strings.Contains(d.log(), "--auth-token on the command line is visible") {
		t.Errorf("no warning about the token on the command line:\n%s", d.log())
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	var resp *http.Response
	for i := 0; i < 50; i++ { // the listener starts just after "tracking"
		req, _ := http.NewRequest(http.MethodGet, "https://"+listen+"/api/status", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err = cl.Do(req); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("HTTPS: %v\n%s", err, d.log())
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("HTTPS status %d, TLS %v", resp.StatusCode, resp.TLS)
	}
	req, _ := http.NewRequest(http.MethodGet, "https://"+listen+"/api/status", nil)
	if resp, err = cl.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("HTTPS without token: %d, want 401", resp.StatusCode)
	}
}
