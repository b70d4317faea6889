package service

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLSConfig is the optional TLS of a service: a server certificate and,
// for mutual TLS, the CA that signs clients' certificates.
type TLSConfig struct {
	CertFile     string // TLS_CERT_FILE
	KeyFile      string // TLS_KEY_FILE
	ClientCAFile string // TLS_CLIENT_CA_FILE: verify client certificates against this CA
	// RequireClientCert refuses connections without a client certificate
	// (TLS_CLIENT_AUTH=require); otherwise one is verified when given.
	RequireClientCert bool
}

// TLSFromEnv reads the TLS keys; all empty means plain HTTP.
func TLSFromEnv(getenv func(string) string) (TLSConfig, error) {
	c := TLSConfig{CertFile: getenv("TLS_CERT_FILE"), KeyFile: getenv("TLS_KEY_FILE"), ClientCAFile: getenv("TLS_CLIENT_CA_FILE")}
	switch v := getenv("TLS_CLIENT_AUTH"); v {
	case "", "optional":
	case "require":
		c.RequireClientCert = true
	default:
		return c, fmt.Errorf("TLS_CLIENT_AUTH=%q: want optional or require", v)
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return c, errors.New("TLS_CERT_FILE and TLS_KEY_FILE go together: set both or neither")
	}
	if c.CertFile == "" && (c.ClientCAFile != "" || c.RequireClientCert) {
		return c, errors.New("TLS_CLIENT_CA_FILE and TLS_CLIENT_AUTH need TLS_CERT_FILE and TLS_KEY_FILE")
	}
	if c.RequireClientCert && c.ClientCAFile == "" {
		return c, errors.New("TLS_CLIENT_AUTH=require needs TLS_CLIENT_CA_FILE")
	}
	return c, nil
}

// Enabled reports whether the service serves TLS.
func (c TLSConfig) Enabled() bool { return c.CertFile != "" }

// Build loads the files into a tls.Config, naming the key of a bad file.
func (c TLSConfig) Build() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS_CERT_FILE/TLS_KEY_FILE: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.ClientCAFile != "" {
		pem, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("TLS_CLIENT_CA_FILE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS_CLIENT_CA_FILE: no PEM certificate in %s", c.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		if c.RequireClientCert {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return cfg, nil
}
