package isapi

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/textproto"
	"strconv"
	"strings"
)

// Limits of the alertStream reader.
const (
	// DefaultMaxPart is the part size cap when none is given (1 MiB).
	DefaultMaxPart = 1 << 20
	maxPartHeaders = 32
	maxHeaderBytes = 8 << 10
)

// Errors of the alertStream reader (wrapped with details).
var (
	// ErrStream is a body that is not a readable multipart stream.
	ErrStream = errors.New("isapi: malformed multipart stream")
	// ErrPartTooLarge is a part over the reader's cap.
	ErrPartTooLarge = errors.New("isapi: multipart part over the size cap")
)

// Part is one part of the alertStream.
type Part struct {
	Header textproto.MIMEHeader
	Body   []byte
}

// ContentType is the part's Content-Type ("" when absent).
func (p Part) ContentType() string { return p.Header.Get("Content-Type") }

// PartReader reads the alertStream's multipart/mixed body part by part
// with every size bounded. It tolerates what firmwares send: no closing
// boundary, text before the first boundary, bogus duplicated boundary
// lines, parts with or without Content-Length. A part over the cap, a
// header block over 8 KiB or more than the cap of bytes without a
// boundary is an error.
type PartReader struct {
	r       *bufio.Reader
	dash    []byte // "--" + boundary
	maxPart int
	pending bool // the boundary opening the next part was already read
	done    bool
}

// Boundary extracts the boundary of a multipart Content-Type, falling back
// to "boundary" (what Hikvision firmwares use when they omit it); a
// non-multipart type or an invalid boundary is an error.
func Boundary(contentType string) (string, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return "", fmt.Errorf("%w: Content-Type %q: %v", ErrStream, contentType, err)
	}
	if !strings.HasPrefix(mt, "multipart/") {
		return "", fmt.Errorf("%w: Content-Type %q is not multipart", ErrStream, mt)
	}
	b, ok := params["boundary"]
	if !ok {
		b = "boundary"
	}
	if len(b) == 0 || len(b) > 70 || strings.ContainsAny(b, "\r\n") {
		return "", fmt.Errorf("%w: invalid boundary %q", ErrStream, b)
	}
	return b, nil
}

// NewPartReader reads parts from r, a body of contentType; maxPart caps a
// part's body (DefaultMaxPart when ≤ 0).
func NewPartReader(r io.Reader, contentType string, maxPart int) (*PartReader, error) {
	b, err := Boundary(contentType)
	if err != nil {
		return nil, err
	}
	if maxPart <= 0 {
		maxPart = DefaultMaxPart
	}
	return &PartReader{r: bufio.NewReaderSize(r, 4096), dash: []byte("--" + b), maxPart: maxPart}, nil
}

// Next returns the next part, io.EOF after a closing boundary or at the
// end of the body between parts, io.ErrUnexpectedEOF for a body cut
// inside a part, and an error wrapping ErrStream or ErrPartTooLarge for
// bad input.
func (p *PartReader) Next() (Part, error) {
	for {
		if p.done {
			return Part{}, io.EOF
		}
		if !p.pending {
			if err := p.skipToBoundary(); err != nil {
				return Part{}, err
			}
		}
		p.pending = false
		hdr, again, err := p.readHeader()
		if err != nil {
			return Part{}, err
		}
		if again { // a duplicated boundary line: the part starts after it
			p.pending = true
			continue
		}
		body, err := p.readBody(hdr)
		if err != nil {
			return Part{}, err
		}
		if len(hdr) == 0 && len(bytes.TrimSpace(body)) == 0 {
			continue // an empty part between two boundary lines
		}
		return Part{Header: hdr, Body: body}, nil
	}
}

// boundaryLine classifies a line: 1 a boundary, 2 the closing one, 0 other.
func (p *PartReader) boundaryLine(line []byte) int {
	line = bytes.TrimRight(line, " \t\r\n")
	if !bytes.HasPrefix(line, p.dash) {
		return 0
	}
	switch rest := line[len(p.dash):]; {
	case len(rest) == 0:
		return 1
	case string(rest) == "--":
		return 2
	}
	return 0
}

// skipToBoundary reads to the next boundary line, skipping at most
// maxPart bytes of other text.
func (p *PartReader) skipToBoundary() error {
	skipped := 0
	for {
		line, err := p.readLine(p.maxPart)
		if err != nil {
			// The body ending between parts is the stream's end (firmwares
			// send no closing boundary).
			return err
		}
		switch p.boundaryLine(line) {
		case 1:
			return nil
		case 2:
			p.done = true
			return io.EOF
		}
		if skipped += len(line); skipped > p.maxPart {
			return fmt.Errorf("%w: no boundary within %d bytes", ErrStream, p.maxPart)
		}
	}
}

// readHeader reads a part's header block; again is true when the first
// line is another boundary line.
func (p *PartReader) readHeader() (hdr textproto.MIMEHeader, again bool, err error) {
	hdr = textproto.MIMEHeader{}
	total, n := 0, 0
	for {
		line, err := p.readLine(maxHeaderBytes)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, false, io.ErrUnexpectedEOF
			}
			return nil, false, err
		}
		if n == 0 {
			switch p.boundaryLine(line) {
			case 1:
				return nil, true, nil
			case 2:
				p.done = true
				return nil, false, io.EOF
			}
		}
		if total += len(line); total > maxHeaderBytes {
			return nil, false, fmt.Errorf("%w: part header over %d bytes", ErrStream, maxHeaderBytes)
		}
		s := strings.TrimRight(string(line), "\r\n")
		if s == "" {
			return hdr, false, nil
		}
		if n++; n > maxPartHeaders {
			return nil, false, fmt.Errorf("%w: more than %d part headers", ErrStream, maxPartHeaders)
		}
		k, v, ok := strings.Cut(s, ":")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, false, fmt.Errorf("%w: part header line %q", ErrStream, truncate(s))
		}
		hdr.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
}

// readBody reads a part's body: Content-Length bytes when given, else to
// the next boundary line.
func (p *PartReader) readBody(hdr textproto.MIMEHeader) ([]byte, error) {
	if cl := hdr.Get("Content-Length"); cl != "" {
		n, err := strconv.Atoi(cl)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%w: Content-Length %q", ErrStream, truncate(cl))
		}
		if n > p.maxPart {
			return nil, fmt.Errorf("%w: %d bytes (cap %d)", ErrPartTooLarge, n, p.maxPart)
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(p.r, body); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		return body, nil
	}
	var body []byte
	for {
		line, err := p.readLine(p.maxPart + 2)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		switch p.boundaryLine(line) {
		case 1:
			p.pending = true
			return trimCRLF(body), nil
		case 2:
			p.done = true
			return trimCRLF(body), nil
		}
		if len(body)+len(line) > p.maxPart+2 {
			return nil, fmt.Errorf("%w: over %d bytes without a boundary", ErrPartTooLarge, p.maxPart)
		}
		body = append(body, line...)
	}
}

// readLine reads one line including its '\n' (or the rest of the body
// before EOF), at most limit bytes.
func (p *PartReader) readLine(limit int) ([]byte, error) {
	var line []byte
	for {
		frag, err := p.r.ReadSlice('\n')
		if len(line)+len(frag) > limit {
			return nil, fmt.Errorf("%w: line over %d bytes", ErrPartTooLarge, limit)
		}
		line = append(line, frag...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return line, err
	}
}

func trimCRLF(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// WritePart writes one part (boundary line, headers, body, CRLF) the way
// firmwares do; the simulator uses it.
func WritePart(w io.Writer, boundary, contentType string, body []byte) error {
	_, err := fmt.Fprintf(w, "--%s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s\r\n", boundary, contentType, len(body), body)
	return err
}
