package ingest_test

import (
	"bytes"
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
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/cloud/ingest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T) testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a certificate (PEM) and key (PEM) signed by the CA.
func (ca testCA) issue(t *testing.T, cn string, server bool) ([]byte, []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// TestMutualTLSBindsCertificateToGateway: with TLS_CLIENT_AUTH=require, a
// gateway needs a certificate from the configured CA whose Common Name is
// its own id; another gateway's certificate with its key is refused, and no
// certificate at all fails the handshake.
func TestMutualTLSBindsCertificateToGateway(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ingest.DefaultLimits())
	ca := newCA(t)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	srvCert, srvKey := ca.issue(t, "agent-api", true)
	cfg := service.TLSConfig{CertFile: write("server.pem", srvCert), KeyFile: write("server.key", srvKey), ClientCAFile: write("ca.pem", ca.pem), RequireClientCert: true}
	tc, err := cfg.Build()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(e.srv.Config.Handler)
	srv.TLS = tc
	srv.StartTLS()
	defer srv.Close()

	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	client := func(cn string) *http.Client {
		tlsCfg := &tls.Config{RootCAs: roots}
		if cn != "" {
			c, k := ca.issue(t, cn, false)
			pair, err := tls.X509KeyPair(c, k)
			if err != nil {
				t.Fatal(err)
			}
			tlsCfg.Certificates = []tls.Certificate{pair}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}, Timeout: 10 * time.Second}
	}
	ping := func(c *http.Client, key string) (int, error) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+protocol.PathGatewayPing, bytes.NewReader(nil))
		req.Header.Set(protocol.HeaderAPIKey, key)
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := ping(client(e.a.id), e.a.key); err != nil || code != 200 {
		t.Errorf("own certificate: %d %v, want 200", code, err)
	}
	if code, err := ping(client(e.b.id), e.a.key); err != nil || code != 401 {
		t.Errorf("gateway B's certificate with A's key: %d %v, want 401", code, err)
	}
	if _, err := ping(client(""), e.a.key); err == nil {
		t.Error("no client certificate: the handshake succeeded, want it refused")
	}
	// A certificate from another CA is refused too.
	other := newCA(t)
	c, k := other.issue(t, e.a.id, false)
	pair, _ := tls.X509KeyPair(c, k)
	foreign := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}}}, Timeout: 10 * time.Second}
	if _, err := ping(foreign, e.a.key); err == nil {
		t.Error("a certificate from another CA was accepted")
	}
}

func TestTLSConfigFromEnvNamesTheKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"TLS_CERT_FILE": "a"}, "TLS_CERT_FILE and TLS_KEY_FILE"},
		{map[string]string{"TLS_CLIENT_CA_FILE": "ca"}, "need TLS_CERT_FILE"},
		{map[string]string{"TLS_CERT_FILE": "a", "TLS_KEY_FILE": "b", "TLS_CLIENT_AUTH": "require"}, "needs TLS_CLIENT_CA_FILE"},
		{map[string]string{"TLS_CLIENT_AUTH": "maybe"}, "TLS_CLIENT_AUTH"},
	}
	for _, tt := range tests {
		_, err := service.TLSFromEnv(func(k string) string { return tt.env[k] })
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tt.want)) {
			t.Errorf("%v: err = %v, want it to mention %q", tt.env, err, tt.want)
		}
	}
	if _, err := (service.TLSConfig{CertFile: "/nonexistent", KeyFile: "/nonexistent"}).Build(); err == nil {
		t.Error("Build with missing files succeeded")
	}
}
