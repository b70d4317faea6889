// Package storagehttp serves the signed download URLs of a local file store
// (storage.Local.URL). It lives outside package storage because the
// storage packages carry no HTTP (internal/archrules): this is the one
// place where a storage error becomes a status.
package storagehttp

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path"
	"strconv"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
)

// Handler serves GET and HEAD of the file a signed URL names: 403 for an
// expired, tampered or unsigned URL (decided before the file is looked at,
// so it reveals nothing about it), 404 for a validly signed key with no
// file, 405 for other methods. Mount it at the store's BaseURL.
func Handler(l *storage.Local, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		f, mod, err := l.OpenSigned(r.Context(), r.URL.Query())
		switch {
		case errors.Is(err, storage.ErrBadSignature):
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		case errors.Is(err, storage.ErrNotFound):
			http.Error(w, "not found", http.StatusNotFound)
			return
		case err != nil:
			log.ErrorContext(r.Context(), "storagehttp: open a signed file", "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		defer f.Close()
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "private, max-age="+strconv.Itoa(maxAge(r)))
		rs, ok := f.(io.ReadSeeker)
		if !ok {
			_, _ = io.Copy(w, f)
			return
		}
		http.ServeContent(w, r, path.Base(r.URL.Query().Get("key")), mod, rs)
	})
}

// maxAge lets a browser cache the file no longer than its URL is valid.
func maxAge(r *http.Request) int {
	exp, err := strconv.ParseInt(r.URL.Query().Get("expires"), 10, 64)
	if err != nil {
		return 0
	}
	return max(0, int(time.Until(time.Unix(exp, 0))/time.Second))
}
