package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Config configures the S3 driver. Endpoint is host[:port] without a
// scheme; UseTLS chooses https. Prefix (optional, no leading slash) is
// prepended to every key, so that several stores can share a bucket.
// PathStyle forces path-style requests (MinIO, SeaweedFS and most
// self-hosted stores want it); otherwise the client picks virtual-host
// style where the endpoint supports it. CreateBucket makes NewS3 create the
// bucket when it is missing. PartSize (default and minimum 5 MiB) is the
// size of one multipart-upload part: an upload holds one part in memory at
// a time (buffers are reused across uploads); a file that fits one part is
// one PUT.
type S3Config struct {
	Endpoint     string
	Region       string
	Bucket       string
	AccessKey    string
	SecretKey    string
	UseTLS       bool
	Prefix       string
	PathStyle    bool
	CreateBucket bool
	PartSize     uint64
}

// minPartSize is S3's smallest multipart-upload part.
const minPartSize = 5 << 20

// S3 stores files as objects in one bucket of an S3-compatible store.
//
// Create is write-once through a conditional write (If-None-Match: * on
// the PUT, or on the CompleteMultipartUpload of a file larger than a
// part): the store itself refuses a second object, so two racing Creates
// cannot both succeed. A store that ignores the condition would silently
// replace; NewS3 does not probe for it, the shared test suite
// (storagetest) checks it against the store used in CI (SeaweedFS 4.53);
// AWS S3 and MinIO support it.
type S3 struct {
	client *minio.Client
	bucket string
	prefix string
	parts  *sync.Pool // of *[]byte, one part each
}

// NewS3 validates cfg (an error names the field), connects and checks that
// the bucket exists, creating it when cfg.CreateBucket is set.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	switch {
	case cfg.Endpoint == "":
		return nil, errors.New("storage: S3 Endpoint is empty")
	case strings.Contains(cfg.Endpoint, "://") || strings.Contains(cfg.Endpoint, "/"):
		return nil, fmt.Errorf("storage: S3 Endpoint %q: want host[:port] without scheme or path (UseTLS chooses https)", cfg.Endpoint)
	case cfg.Bucket == "":
		return nil, errors.New("storage: S3 Bucket is empty")
	case cfg.AccessKey == "":
		return nil, errors.New("storage: S3 AccessKey is empty")
	case cfg.SecretKey == "":
		return nil, errors.New("storage: S3 SecretKey is empty")
	case cfg.PartSize != 0 && cfg.PartSize < minPartSize:
		return nil, fmt.Errorf("storage: S3 PartSize %d: want at least %d (5 MiB)", cfg.PartSize, minPartSize)
	}
	if cfg.Prefix != "" {
		if err := CheckKey(strings.TrimSuffix(cfg.Prefix, "/")); err != nil {
			return nil, fmt.Errorf("storage: S3 Prefix %q: want a relative path like a key", cfg.Prefix)
		}
		if !strings.HasSuffix(cfg.Prefix, "/") {
			cfg.Prefix += "/"
		}
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = minPartSize
	}
	lookup := minio.BucketLookupAuto
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:       cfg.UseTLS,
		Region:       cfg.Region,
		BucketLookup: lookup,
	})
	if err != nil {
		return nil, fmt.Errorf("storage: S3 Endpoint %q: %w", cfg.Endpoint, err)
	}
	ok, err := client.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("storage: S3 Bucket %q: %w", cfg.Bucket, err)
	}
	if !ok {
		if !cfg.CreateBucket {
			return nil, fmt.Errorf("storage: S3 Bucket %q does not exist (set CreateBucket to create it)", cfg.Bucket)
		}
		if err := client.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region}); err != nil {
			if code := minio.ToErrorResponse(err).Code; code != "BucketAlreadyOwnedByYou" && code != "BucketAlreadyExists" {
				return nil, fmt.Errorf("storage: S3 Bucket %q: create: %w", cfg.Bucket, err)
			}
		}
	}
	partSize := cfg.PartSize
	parts := &sync.Pool{New: func() any { b := make([]byte, partSize); return &b }}
	return &S3{client: client, bucket: cfg.Bucket, prefix: cfg.Prefix, parts: parts}, nil
}

func (s *S3) object(key string) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	return s.prefix + key, nil
}

// Put uploads r to key. An object appears only once its upload completed
// (a single PUT, or a multipart upload's completion for files larger than
// a part), so a reader never sees half a file; a failed or cancelled
// multipart upload is aborted.
func (s *S3) Put(ctx context.Context, key string, r io.Reader) error {
	return s.put(ctx, key, r, false)
}

// Create uploads r to key with If-None-Match: * so that the store refuses
// it when an object exists: ErrExists, the stored object untouched.
func (s *S3) Create(ctx context.Context, key string, r io.Reader) error {
	return s.put(ctx, key, r, true)
}

func (s *S3) put(ctx context.Context, key string, r io.Reader, once bool) error {
	name, err := s.object(key)
	if err != nil {
		return err
	}
	opts := minio.PutObjectOptions{}
	if once {
		opts.SetMatchETagExcept("*") // If-None-Match: *
	}
	bufp := s.parts.Get().(*[]byte)
	defer s.parts.Put(bufp)
	buf := *bufp
	r = ctxReader{ctx, r}
	n, err := io.ReadFull(r, buf)
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		// Fits one part: one PUT, which carries the condition itself.
		_, err = s.client.PutObject(ctx, s.bucket, name, bytes.NewReader(buf[:n]), int64(n), opts)
	case err != nil:
		return fmt.Errorf("storage: put %s: read: %w", key, err)
	default:
		err = s.multipart(ctx, name, buf, r, opts)
	}
	if err != nil {
		if once && isPreconditionFailed(err) {
			return ErrExists
		}
		if ctx.Err() != nil {
			return fmt.Errorf("storage: put %s: %w", key, ctx.Err())
		}
		return fmt.Errorf("storage: put %s: %w", key, err)
	}
	return nil
}

// multipart uploads a full first part in buf and the rest of r, one part at
// a time through buf, and completes the upload with opts (so that a
// Create's If-None-Match is checked when the object would appear;
// minio-go's own multipart path drops it). A failed upload is aborted.
func (s *S3) multipart(ctx context.Context, name string, buf []byte, r io.Reader, opts minio.PutObjectOptions) (err error) {
	core := minio.Core{Client: s.client}
	id, err := core.NewMultipartUpload(ctx, s.bucket, name, minio.PutObjectOptions{})
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			_ = core.AbortMultipartUpload(actx, s.bucket, name, id)
		}
	}()
	var parts []minio.CompletePart
	n := len(buf)
	for num := 1; n > 0; num++ {
		p, err := core.PutObjectPart(ctx, s.bucket, name, id, num, bytes.NewReader(buf[:n]), int64(n), minio.PutObjectPartOptions{})
		if err != nil {
			return err
		}
		parts = append(parts, minio.CompletePart{PartNumber: num, ETag: p.ETag})
		if n < len(buf) {
			break
		}
		n, err = io.ReadFull(r, buf)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return err
		}
	}
	_, err = core.CompleteMultipartUpload(ctx, s.bucket, name, id, parts, opts)
	return err
}

func isPreconditionFailed(err error) bool {
	e := minio.ToErrorResponse(err)
	return e.StatusCode == 412 || e.Code == "PreconditionFailed" || e.StatusCode == 409 && e.Code == "ConditionalRequestConflict"
}

// List lists the objects under prefix.
func (s *S3) List(ctx context.Context, prefix string, fn func(key string, modTime time.Time) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing goroutine when fn fails
	for obj := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true}) {
		if obj.Err != nil {
			return fmt.Errorf("storage: list %s: %w", prefix, obj.Err)
		}
		if strings.HasSuffix(obj.Key, "/") {
			continue // a directory marker, not a file
		}
		if err := fn(strings.TrimPrefix(obj.Key, s.prefix), obj.LastModified); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// Get opens the object at key; ErrNotFound when there is none.
func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	name, err := s.object(key)
	if err != nil {
		return nil, err
	}
	obj, err := s.client.GetObject(ctx, s.bucket, name, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("storage: get %s: %w", key, err)
	}
	// GetObject is lazy: Stat makes the request, so a missing key is
	// reported here rather than at the first Read.
	if _, err := obj.Stat(); err != nil {
		obj.Close()
		if minio.ToErrorResponse(err).Code == "NoSuchKey" || minio.ToErrorResponse(err).StatusCode == 404 {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("storage: get %s: %w", key, err)
	}
	return obj, nil
}

// Delete removes the object at key; S3 reports no error for a missing one.
func (s *S3) Delete(ctx context.Context, key string) error {
	name, err := s.object(key)
	if err != nil {
		return err
	}
	if err := s.client.RemoveObject(ctx, s.bucket, name, minio.RemoveObjectOptions{}); err != nil {
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return nil
		}
		return fmt.Errorf("storage: delete %s: %w", key, err)
	}
	return nil
}

// URL presigns a GET of key valid for expires (1 s to MaxURLExpiry).
func (s *S3) URL(ctx context.Context, key string, expires time.Duration) (string, error) {
	name, err := s.object(key)
	if err != nil {
		return "", err
	}
	if err := checkExpiry(expires); err != nil {
		return "", err
	}
	u, err := s.client.PresignedGetObject(ctx, s.bucket, name, expires, nil)
	if err != nil {
		return "", fmt.Errorf("storage: presign %s: %w", key, err)
	}
	return u.String(), nil
}

var (
	_ Store  = (*S3)(nil)
	_ Signer = (*S3)(nil)
	_ Store  = (*Local)(nil)
	_ Signer = (*Local)(nil)
)
