package api

import (
	"context"
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

// testPKI is a CA, a server certificate for 127.0.0.1 and a client
// certificate, made with crypto/x509 and written as PEM files.
type testPKI struct {
	dir                       string
	caFile, certFile, keyFile string
	pool                      *x509.CertPool
	client                    tls.Certificate
	otherClient               tls.Certificate // signed by another CA
	caCert                    *x509.Certificate
}

func newKeyPEM(t *testing.T, k *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

func newCA(t *testing.T, name string) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, k, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func issue(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, serial int64, usage x509.ExtKeyUsage) ([]byte, []byte) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "bwtracker-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca, &k.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), newKeyPEM(t, k)
}

func makePKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir()}
	ca, caKey, caPEM := newCA(t, "bwtracker test CA")
	p.caCert = ca
	certPEM, keyPEM := issue(t, ca, caKey, 2, x509.ExtKeyUsageServerAuth)
	p.caFile, p.certFile, p.keyFile = filepath.Join(p.dir, "ca.pem"), filepath.Join(p.dir, "cert.pem"), filepath.Join(p.dir, "key.pem")
	for f, b := range map[string][]byte{p.caFile: caPEM, p.certFile: certPEM, p.keyFile: keyPEM} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p.pool = x509.NewCertPool()
	p.pool.AddCert(ca)
	cc, ck := issue(t, ca, caKey, 3, x509.ExtKeyUsageClientAuth)
	var err error
	if p.client, err = tls.X509KeyPair(cc, ck); err != nil {
		t.Fatal(err)
	}
	other, otherKey, _ := newCA(t, "another CA")
	oc, ok := issue(t, other, otherKey, 4, x509.ExtKeyUsageClientAuth)
	if p.otherClient, err = tls.X509KeyPair(oc, ok); err != nil {
		t.Fatal(err)
	}
	return p
}

// serveTLSTest serves h over TLS on 127.0.0.1:0 and returns its base URL.
func serveTLSTest(t *testing.T, h http.Handler, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeTLS(ctx, ln, h, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeTLS: %v", err)
		}
	})
	return "https://" + ln.Addr().String()
}

func tlsGet(url, token string, tc *tls.Config) (*http.Response, error) {
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return cl.Do(req)
}

const tlsToken = "0123456789abcdef0123"

// HTTPS with the token: TLS 1.2+ only, the token still required, plain
// HTTP refused on the TLS port.
func TestTLSServer(t *testing.T) {
	p := makePKI(t)
	cfg, err := LoadTLS(TLSFiles{CertFile: p.certFile, KeyFile: p.keyFile})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, Config{AuthToken: tlsToken})
	base := serveTLSTest(t, e.h, cfg)

	resp, err := tlsGet(base+"/api/status", tlsToken, &tls.Config{RootCAs: p.pool})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("status %d, tls %+v", resp.StatusCode, resp.TLS)
	}
	resp, err = tlsGet(base+"/api/status", "wrong-token-wrong-token", &tls.Config{RootCAs: p.pool})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong token over TLS: status %d", resp.StatusCode)
	}
	if _, err := tlsGet(base+"/api/status", tlsToken, &tls.Config{RootCAs: p.pool, MaxVersion: tls.VersionTLS11}); err == nil {
		t.Fatal("a TLS 1.1 client was accepted")
	}
	if _, err := tlsGet(base+"/api/status", tlsToken, &tls.Config{}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a client without the CA should not trust the server: %v", err)
	}
	resp, err = http.Get(strings.Replace(base, "https://", "http://", 1) + "/api/status")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP answered 200 on the TLS port")
		}
	}
}

// mTLS: a client certificate from the given CA is required; the token too.
func TestMutualTLS(t *testing.T) {
	p := makePKI(t)
	cfg, err := LoadTLS(TLSFiles{CertFile: p.certFile, KeyFile: p.keyFile, ClientCA: p.caFile})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, Config{AuthToken: tlsToken})
	base := serveTLSTest(t, e.h, cfg)
	resp, err := tlsGet(base+"/api/status", tlsToken, &tls.Config{RootCAs: p.pool, Certificates: []tls.Certificate{p.client}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("client cert + token: %d", resp.StatusCode)
	}
	resp, err = tlsGet(base+"/api/status", "", &tls.Config{RootCAs: p.pool, Certificates: []tls.Certificate{p.client}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("client cert without token: %d, want 401", resp.StatusCode)
	}
	for name, certs := range map[string][]tls.Certificate{"no client certificate": nil, "another CA's certificate": {p.otherClient}} {
		resp, err := tlsGet(base+"/api/status", tlsToken, &tls.Config{RootCAs: p.pool, Certificates: certs})
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s: accepted with status %d", name, resp.StatusCode)
		}
	}
}

// Bad paths, modes and contents are clear errors naming the flag.
func TestLoadTLSErrors(t *testing.T) {
	p := makePKI(t)
	garbage := filepath.Join(p.dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not a certificate\n"), 0o600)
	open := filepath.Join(p.dir, "open-key.pem")
	b, _ := os.ReadFile(p.keyFile)
	os.WriteFile(open, b, 0o644)
	os.Chmod(open, 0o644)
	noRead := filepath.Join(p.dir, "noread.pem")
	os.WriteFile(noRead, b, 0o000)
	cases := []struct {
		f    TLSFiles
		want []string
	}{
		{TLSFiles{CertFile: p.certFile}, []string{"go together"}},
		{TLSFiles{ClientCA: p.caFile}, []string{"--tls-client-ca needs"}},
		{TLSFiles{CertFile: filepath.Join(p.dir, "missing.pem"), KeyFile: p.keyFile}, []string{"--tls-cert-file", "missing.pem", "no such file"}},
		{TLSFiles{CertFile: p.certFile, KeyFile: open}, []string{"--tls-key-file", "0644", "chmod 600 " + open}},
		{TLSFiles{CertFile: garbage, KeyFile: p.keyFile}, []string{"--tls-cert-file", "garbage.pem", "PEM certificate"}},
		{TLSFiles{CertFile: p.certFile, KeyFile: p.keyFile, ClientCA: garbage}, []string{"--tls-client-ca", "no PEM certificate"}},
		{TLSFiles{CertFile: p.caFile, KeyFile: p.keyFile}, []string{"private key that belongs to it"}},
	}
	if os.Geteuid() != 0 { // root reads mode-000 files
		cases = append(cases, struct {
			f    TLSFiles
			want []string
		}{TLSFiles{CertFile: p.certFile, KeyFile: noRead}, []string{"--tls-key-file", "permission denied"}})
	}
	for _, c := range cases {
		_, err := LoadTLS(c.f)
		if err == nil {
			t.Errorf("%+v: no error", c.f)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: error %q does not mention %q", c.f, err, w)
			}
		}
	}
	if cfg, err := LoadTLS(TLSFiles{}); cfg != nil || err != nil {
		t.Errorf("no TLS flags: %v %v", cfg, err)
	}
}
