package uplink

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
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/edge/cloudclient"
)

// testCA issues certificates for the mutual TLS test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns PEM certificate and key for a server (with 127.0.0.1) or client.
func (ca *testCA) issue(t *testing.T, serial int64, server bool) ([]byte, []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "gateway"},
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
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func TestMutualTLSUpload(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caFile := write("ca.pem", ca.pem)
	srvCert, srvKey := ca.issue(t, 2, true)
	cliCert, cliKey := ca.issue(t, 3, false)
	certFile, keyFile := write("client.pem", cliCert), write("client-key.pem", cliKey)

	// A TLS front that requires a client certificate from the CA and
	// forwards to the ingest test server.
	cloud := newServer(t)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.pem)
	pair, err := tls.X509KeyPair(srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	target, _ := http.NewRequest(http.MethodGet, cloud.URL, nil)
	front := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "no client certificate", http.StatusForbidden)
			return
		}
		r.URL.Scheme, r.URL.Host, r.RequestURI = "http", target.URL.Host, ""
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		buf := make([]byte, 32<<10)
		for {
			n, err := resp.Body.Read(buf)
			w.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}))
	front.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	front.StartTLS()
	defer front.Close()

	b := openBuffer(t, filepath.Join(t.TempDir(), "buffer.sqlite"))
	defer b.Close()
	ids := appendLogs(t, b, 30)

	// Without a client certificate the handshake fails: nothing is sent.
	noCert, err := cloudclient.NewHTTPClient(cloudclient.TLSFiles{CAFile: caFile}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	opts := testOptions(front.URL)
	opts.Client = noCert
	u, _ := New(b, opts)
	stop := run(t, u)
	waitFor(t, "a handshake failure", 5*time.Second, func() bool { return u.Status().LastError != "" })
	stop()
	if cloud.Stats().Batches != 0 {
		t.Fatal("batch stored without a client certificate")
	}

	client, err := cloudclient.NewHTTPClient(cloudclient.TLSFiles{CAFile: caFile, CertFile: certFile, KeyFile: keyFile}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	opts.Client = client
	u, _ = New(b, opts)
	run(t, u)
	waitFor(t, "drain over mTLS", 5*time.Second, func() bool { return drained(b) })
	checkExactlyOnce(t, cloud, ids)
}
