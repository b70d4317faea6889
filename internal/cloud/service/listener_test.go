package service

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/lifecycle"
	"github.com/staffcontrol/staffcontrol/internal/lifecycle/lifecycletest"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
)

// hello answers every request with "hello".
var hello = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "hello") })

// TestListenerKeepsTheLifecycleContract: a Listener is a lifecycle.Service.
func TestListenerKeepsTheLifecycleContract(t *testing.T) {
	lifecycletest.Conformance(t, func(t *testing.T) lifecycle.Service {
		l := NewListener(ListenerConfig{Name: "test api", Addr: "127.0.0.1:0", AddrKey: "TEST_ADDR", Handler: hello,
			Logger: logtest.New(t), Timeouts: quick})
		t.Cleanup(func() { _ = l.Stop(context.Background()) })
		return l
	})
}

// TestListenerServesUntilStopped: NewListener binds nothing; Start returns
// once the listener accepts (Listening reports its address, the handler
// answers); Stop closes the address without Failed closing; Start after
// Stop is refused.
func TestListenerServesUntilStopped(t *testing.T) {
	ctx := context.Background()
	var reported net.Addr
	l := NewListener(ListenerConfig{Name: "test api", Addr: "127.0.0.1:0", AddrKey: "TEST_ADDR", Handler: hello,
		Logger: logtest.New(t), Timeouts: quick, Listening: func(a net.Addr) { reported = a }})
	if l.Addr() != nil || reported != nil {
		t.Fatalf("NewListener bound %v (reported %v); it must bind nothing", l.Addr(), reported)
	}
	if err := l.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if reported == nil || reported.String() != l.Addr().String() {
		t.Fatalf("Listening reported %v, Addr is %v", reported, l.Addr())
	}
	if err := l.Start(ctx); err == nil || !strings.Contains(err.Error(), "started twice") {
		t.Errorf("second Start: %v, want started twice", err)
	}
	resp, err := http.Get("http://" + l.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "hello" {
		t.Errorf("GET /: %d %q, want 200 hello", resp.StatusCode, body)
	}
	if err := l.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("tcp", l.Addr().String()); err == nil {
		c.Close()
		t.Fatal("the listener still accepts after Stop")
	}
	select {
	case <-l.Failed():
		t.Error("Failed closed by Stop; it is for a listener that stops on its own")
	default:
	}
	if err := l.Start(ctx); err == nil || !strings.Contains(err.Error(), "start after stop") {
		t.Errorf("Start after Stop: %v, want start after stop", err)
	}
}

// TestListenerBindFailureNamesTheKey: an address that cannot be bound fails
// Start with the configuration key and the address.
func TestListenerBindFailureNamesTheKey(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	l := NewListener(ListenerConfig{Name: "test api", Addr: taken.Addr().String(), AddrKey: "TEST_ADDR", Handler: hello,
		Logger: logtest.New(t)})
	err = l.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "TEST_ADDR="+taken.Addr().String()) {
		t.Fatalf("Start on a taken address: %v, want an error naming TEST_ADDR and the address", err)
	}
	if err := l.Stop(context.Background()); err != nil {
		t.Errorf("Stop after a failed Start: %v", err)
	}
}

// TestListenerServesTLS: with TLS set, the listener speaks only TLS.
func TestListenerServesTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	l := NewListener(ListenerConfig{Name: "test api", Addr: "127.0.0.1:0", AddrKey: "TEST_ADDR", Handler: hello,
		Logger: logtest.New(t), Timeouts: quick, TLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}})
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Stop(context.Background()); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("https://" + l.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "hello" {
		t.Errorf("GET / over TLS: %d %q, want 200 hello", resp.StatusCode, body)
	}
	plain := &http.Client{Timeout: 5 * time.Second}
	if resp, err := plain.Get("http://" + l.Addr().String() + "/"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP answered 200 on a TLS listener")
		}
	}
}

// selfSigned returns a certificate for 127.0.0.1 and a pool trusting it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "listener test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
