package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// The release signature: ed25519 (pure, RFC 8032) over the bytes of
// SHA256SUMS, stored raw (64 bytes) in SHA256SUMS.sig, the form
// `openssl pkeyutl -verify -rawin -sigfile` checks. Keys are PEM: PKCS #8
// for the private key, PKIX for the public key, as openssl writes them.

// writeKeyPair writes prefix.key (mode 0600, never overwritten) and
// prefix.pub.
func writeKeyPair(prefix string) error {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("release keygen: %w", err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("release keygen: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return fmt.Errorf("release keygen: %w", err)
	}
	for _, f := range []struct {
		path  string
		mode  os.FileMode
		block *pem.Block
	}{
		{prefix + ".key", 0o600, &pem.Block{Type: "PRIVATE KEY", Bytes: privDER}},
		{prefix + ".pub", 0o644, &pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}},
	} {
		if err := writeNew(f.path, pem.EncodeToMemory(f.block), f.mode); err != nil {
			return err
		}
	}
	return nil
}

// writeNew creates path (it must not exist) with data and mode.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("release keygen: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("release keygen: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("release keygen: %w", err)
	}
	return nil
}

// readPEM reads the one PEM block of type typ in path.
func readPEM(path, typ string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != typ {
		return nil, fmt.Errorf("release: %s holds no PEM %q block", path, typ)
	}
	return block.Bytes, nil
}

// readPrivateKey reads an ed25519 private key (PEM, PKCS #8).
func readPrivateKey(path string) (ed25519.PrivateKey, error) {
	der, err := readPEM(path, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	return parsePrivateKey(der, path)
}

func parsePrivateKey(der []byte, path string) (ed25519.PrivateKey, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("release: %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("release: %s is a %T, not an ed25519 key", path, k)
	}
	return priv, nil
}

// readPublicKey reads an ed25519 public key (PEM, PKIX).
func readPublicKey(path string) (ed25519.PublicKey, error) {
	der, err := readPEM(path, "PUBLIC KEY")
	if err != nil {
		return nil, err
	}
	return parsePublicKey(der, path)
}

func parsePublicKey(der []byte, path string) (ed25519.PublicKey, error) {
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("release: %s: %w", path, err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("release: %s is a %T, not an ed25519 key", path, k)
	}
	return pub, nil
}

// signSums is the raw ed25519 signature of SHA256SUMS.
func signSums(key ed25519.PrivateKey, sums []byte) []byte { return ed25519.Sign(key, sums) }

// verifyRelease checks dir's SHA256SUMS.sig against pubPath's key, then
// every file SHA256SUMS lists; it returns how many files it checked.
func verifyRelease(dir, pubPath string) (int, error) {
	pub, err := readPublicKey(pubPath)
	if err != nil {
		return 0, err
	}
	sums, err := os.ReadFile(filepath.Join(dir, "SHA256SUMS"))
	if err != nil {
		return 0, fmt.Errorf("release verify: %w", err)
	}
	sig, err := os.ReadFile(filepath.Join(dir, "SHA256SUMS.sig"))
	if err != nil {
		return 0, fmt.Errorf("release verify: %w", err)
	}
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, sums, sig) {
		return 0, errors.New("release verify: SHA256SUMS.sig is not a valid signature of SHA256SUMS by this key")
	}
	want, err := parseSums(sums)
	if err != nil {
		return 0, err
	}
	for name, hash := range want {
		got, err := fileSHA256(filepath.Join(dir, name))
		if err != nil {
			return 0, fmt.Errorf("release verify: %w", err)
		}
		if got != hash {
			return 0, fmt.Errorf("release verify: %s does not match its checksum in SHA256SUMS", name)
		}
	}
	return len(want), nil
}
