package enroll

import (
	"errors"
	"fmt"
	"sync"
)

// Keyring holds the gateway's credentials in memory and in the key file.
// Every component that talks to the cloud asks it for the current key on
// each request, so a rotated key takes effect everywhere at once.
type Keyring struct {
	path string

	mu    sync.RWMutex
	creds Credentials
}

// NewKeyring returns a Keyring over creds, persisted at path (the key
// file; "" keeps it in memory only, for keys given in configuration).
func NewKeyring(path string, creds *Credentials) (*Keyring, error) {
	if creds == nil || creds.APIKey == "" {
		return nil, errors.New("enroll: keyring needs credentials with an api_key")
	}
	return &Keyring{path: path, creds: *creds}, nil
}

// APIKey returns the current API key.
func (k *Keyring) APIKey() string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.creds.APIKey
}

// Persistent reports whether Replace writes the key file. A Keyring over a
// key given in configuration is not: a rotated key would be lost at the
// next start, so such a gateway must not rotate.
func (k *Keyring) Persistent() bool { return k.path != "" }

// Credentials returns a copy of the current credentials.
func (k *Keyring) Credentials() Credentials {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.creds
}

// Replace makes newKey the current key: it is written to the key file
// (atomically, synced) before it is used, so a crash leaves either the old
// key or the new one on disk, never neither.
func (k *Keyring) Replace(newKey string) error {
	if newKey == "" {
		return errors.New("enroll: empty api key")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	next := k.creds
	next.APIKey = newKey
	if k.path != "" {
		if err := Save(k.path, &next); err != nil {
			return fmt.Errorf("enroll: persist rotated key: %w", err)
		}
	}
	k.creds = next
	return nil
}
