// Package buffer is the gateway's store-and-forward buffer: a SQLite file in
// WAL mode holding every event from the moment the collector acknowledges it
// until the cloud answered 2xx for the batch that carried it.
//
// Durability promise: with synchronous=FULL (the default) an acknowledged
// event survives a process crash and a power loss or kernel crash of the
// gateway host (the commit is fsynced before the agent is answered, and
// screenshot image files are fsynced before their row commits). With
// synchronous=NORMAL the promise shrinks to process crashes only.
//
// All writes go through one connection and one writer goroutine. Appends
// from concurrent requests are group-committed, fed by a bounded queue; a
// caller learns that its events are durable only when Append returns. The
// uplink's claims and deletes run on the same goroutine as short jobs of at
// most WriteChunkRows rows each, and waiting appends always go first, so an
// agent's acknowledgement never waits behind a whole batch's claim or
// delete. A claim reads its rows and then records the batch once, as a
// token and a row-id range, moving the stream's claim cursor (see
// sql/raw/streams.sql): rows are written twice in their life (insert and delete),
// never rewritten to be claimed.
package buffer

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	_ "modernc.org/sqlite" // the pure-Go SQLite driver, registered as "sqlite"

	"github.com/staffcontrol/staffcontrol/internal/edge/buffer/bufferdb"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

//go:embed schema.sql sql/raw/streams.sql sql/raw/groupinsert.sql
var sqlFiles embed.FS

// Errors returned by Append.
var (
	// ErrFull means the buffer is at or above the critical level (95 %) or
	// the events would push it past its maximum size: refuse with 503.
	ErrFull = errors.New("buffer: full")
	// ErrShedding means screenshots are refused at the warning level (80 %).
	ErrShedding = errors.New("buffer: shedding screenshots")
	// ErrClosed means the buffer is closed.
	ErrClosed = errors.New("buffer: closed")
)

// Stream names an upload stream: which rows travel to which cloud endpoint.
type Stream string

// The three upload streams.
const (
	StreamLogs        Stream = "logs"
	StreamScreenshots Stream = "screenshots"
	StreamDevice      Stream = "device-events"
)

// Streams lists every stream in upload priority order.
func Streams() []Stream { return []Stream{StreamLogs, StreamScreenshots, StreamDevice} }

func (s Stream) class() string {
	switch s {
	case StreamScreenshots:
		return protocol.ClassScreenshot
	case StreamDevice:
		return protocol.ClassDevice
	default:
		return protocol.ClassLog
	}
}

func (s Stream) tableName() string {
	if s == StreamDevice {
		return "device_data_buffer"
	}
	return "agent_data_buffer"
}

// cursorKey is the gateway_state key of the stream's claim cursor.
func (s Stream) cursorKey() string { return "claimed_through:" + string(s) }

// StreamForClass maps a data class to its upload stream.
func StreamForClass(class string) Stream {
	switch class {
	case protocol.ClassScreenshot:
		return StreamScreenshots
	case protocol.ClassDevice:
		return StreamDevice
	default:
		return StreamLogs
	}
}

// rowOverhead is added to each row's accounted size for indexes and row
// headers, so that the byte budget reflects what SQLite really stores.
const rowOverhead = 160

// Config is the buffer's tunables: the buffer.* keys of the gateway's
// configuration (internal/edge/config composes it), declared here once.
// Path and MaxBytes are required.
type Config struct {
	// Path of the SQLite file; its directory also holds screenshot files.
	Path string
	// MaxBytes is the buffer's size limit (buffer.max_size).
	MaxBytes int64
	// Retention drops unsent rows older than this (buffer.retention_days).
	Retention time.Duration
	// Synchronous is FULL (power-loss durable, default) or NORMAL.
	Synchronous string
	// DeadLetterMaxEvents and DeadLetterMaxBytes bound the dead letters
	// (buffer.dead_letter_max_events, buffer.dead_letter_max_bytes): over
	// either, the oldest are purged. Zero means 10,000 events and a tenth
	// of MaxBytes.
	DeadLetterMaxEvents int
	DeadLetterMaxBytes  int64
}

// Options configures New and Open: the buffer's Config and what it is
// given.
type Options struct {
	Config
	// Logger receives JSON logs; nil discards.
	Logger *slog.Logger
	// Registerer receives the buffer's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Now is the clock; nil uses time.Now.
	Now func() time.Time
	// FSUsage reports how full the filesystem holding dir is (0..1); nil
	// uses statfs.
	FSUsage func(dir string) (float64, error)
	// MaintenanceInterval is how often usage, shedding, retention and WAL
	// checkpoints run; zero means one second.
	MaintenanceInterval time.Duration
	// MaxGroupEvents bounds one group commit; zero means 4096.
	MaxGroupEvents int
	// WriteChunkRows bounds the rows one claim or delete transaction
	// touches while agents are sending (a batch takes several); zero means
	// 256. With no append for idleAfter (draining a backlog after an
	// outage, say), chunks are idleChunkFactor times larger.
	WriteChunkRows int
	// Driver is the database/sql driver: "sqlite" (modernc.org/sqlite, pure
	// Go, the default) or "sqlite3" (mattn/go-sqlite3, cgo; linked only in
	// builds with the sqlite_cgo tag, for the driver comparison benchmark).
	Driver string
}

// Record is one event to append.
type Record struct {
	// Class is log, screenshot or device.
	Class string
	// Type is the event type (active_window, …, or the device event kind).
	Type string
	// EventID is the canonical UUID of the event.
	EventID string
	// Payload is the event as JSON without seq (the uplink adds it).
	Payload []byte
	// FileSize is the size of a screenshot's image file, already in place.
	FileSize int64
	// DeviceSerial and AdapterType are set for device events.
	DeviceSerial string
	AdapterType  string
	// TraceParent is the W3C traceparent of the traced request that brought
	// the record ("" untraced). An append stores the first record's for the
	// sequence range of its new records (trace_contexts), so one append is
	// one row whatever its size.
	TraceParent string
}

// Appended is the outcome of one Record.
type Appended struct {
	// Seq is the sequence number assigned; 0 for a duplicate.
	Seq int64
	// Duplicate is true when the event id was already buffered.
	Duplicate bool
}

type classCounters struct {
	rows, bytes               int64
	claimedRows, claimedBytes int64
}

// classDelta is what one transaction added, per class, to apply to the
// counters once it commits.
type classDelta map[string]*classCounters

// add counts one stored row of class and size.
func (d classDelta) add(class string, size int64) {
	c := d[class]
	if c == nil {
		c = &classCounters{}
		d[class] = c
	}
	c.rows++
	c.bytes += size
}

// applyDelta adds a committed transaction's rows to the counters.
func (b *Buffer) applyDelta(d classDelta) {
	b.mu.Lock()
	for class, n := range d {
		c := b.counters[class]
		c.rows += n.rows
		c.bytes += n.bytes
	}
	b.mu.Unlock()
}

// Buffer is an open buffer. Its methods are safe for concurrent use.
type Buffer struct {
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	dir     string
	shotDir string
	// db has exactly one connection, opened with locking_mode=EXCLUSIVE:
	// the process holds the file for its lifetime, SQLite keeps the WAL
	// index in heap memory (no mmap'd -shm file, no file-lock system calls
	// per transaction), and every read and write shares the connection.
	// Writes run on the writer goroutine; reads take the connection between
	// them.
	db *sql.DB
	// qs runs the typed statements (bufferdb), each prepared once on db
	// at open; prepared holds the same statements by query text, for
	// onTx (statements.go), which runs them in a transaction.
	qs       *bufferdb.Queries
	prepared map[string]*sql.Stmt
	// traced is set while trace_contexts may hold rows (set at open when it
	// does, and by a traced append), so that acks of untraced events do not
	// touch the table.
	traced atomic.Bool
	// streamQ holds the per-stream statements (sql/raw/streams.sql), by
	// "<name>:<stream>".
	streamQ map[string]string
	// groupInsert is insert_agent_rows (sql/raw/groupinsert.sql) by row
	// count, each prepared at open; insertArgs is the writer goroutine's
	// scratch space for their parameters.
	groupInsert map[int]string
	insertArgs  []any

	appendCh chan *appendReq
	jobCh    chan *writeJob
	closing  chan struct{}
	// writerDone is closed when the writer goroutine has exited (or at a
	// Stop without Start): requests still queued then were never run.
	writerDone chan struct{}

	// life is the state of Start and Stop (see lifecycle.go).
	life lifeState

	// claimMu serialises, per stream, the claims and the drops of unclaimed
	// rows (shedding, retention): both read rows above the stream's claim
	// cursor, which only a claim moves.
	claimMu map[Stream]*sync.Mutex
	// cursor is each stream's claim cursor (see sql/raw/streams.sql), changed only
	// under claimMu after the commit that stores it.
	cursor map[Stream]*atomic.Int64

	mu       sync.Mutex
	counters map[string]*classCounters
	// deadRows and deadBytes describe the dead letters (under mu); their
	// bytes count in the buffer's usage.
	deadRows, deadBytes int64
	nextSeq             int64 // owned by the writer goroutine after Open
	deadDir             string

	quarantined atomic.Int64 // corrupt files moved aside by Open
	lastAppend  atomic.Int64 // Unix nanoseconds of the last Append

	level     atomic.Int32
	usage     atomic.Uint64 // float64 bits
	fsUsage   atomic.Uint64 // float64 bits
	notify    map[Stream]chan struct{}
	wakeMaint chan struct{}
	// lastRetention is when maintain last enforced retention (owned by the
	// maintenance loop).
	lastRetention time.Time

	m *metrics
}

// New opens (creating if needed) the buffer at opts.Path, recovers its
// counters and removes orphaned screenshot files; it starts nothing. Reads
// work at once; writes (appends, claims, acknowledgements, state) wait for
// Start, which starts the writer and the maintenance loops. Stop stops them
// and closes the file (also when the buffer was never started).
func New(ctx context.Context, opts Options) (*Buffer, error) {
	if opts.Path == "" {
		return nil, errors.New("buffer: path is required")
	}
	if opts.MaxBytes <= 0 {
		return nil, errors.New("buffer: max size must be positive")
	}
	if opts.Synchronous == "" {
		opts.Synchronous = "FULL"
	}
	opts.Synchronous = strings.ToUpper(opts.Synchronous)
	if opts.Synchronous != "FULL" && opts.Synchronous != "NORMAL" && opts.Synchronous != "EXTRA" {
		return nil, fmt.Errorf("buffer: synchronous must be FULL, EXTRA or NORMAL, not %q", opts.Synchronous)
	}
	if opts.Retention <= 0 {
		opts.Retention = 7 * 24 * time.Hour
	}
	if opts.MaintenanceInterval <= 0 {
		opts.MaintenanceInterval = time.Second
	}
	if opts.MaxGroupEvents <= 0 {
		opts.MaxGroupEvents = 4096
	}
	if opts.WriteChunkRows <= 0 {
		opts.WriteChunkRows = 256
	}
	if opts.Driver == "" {
		opts.Driver = "sqlite"
	}
	if opts.DeadLetterMaxEvents <= 0 {
		opts.DeadLetterMaxEvents = DefaultDeadLetterMaxEvents
	}
	if opts.DeadLetterMaxBytes <= 0 {
		opts.DeadLetterMaxBytes = opts.MaxBytes / 10
	}
	b := &Buffer{
		opts:       opts,
		log:        opts.Logger,
		now:        opts.Now,
		dir:        filepath.Dir(opts.Path),
		appendCh:   make(chan *appendReq, 256),
		jobCh:      make(chan *writeJob, 16),
		writerDone: make(chan struct{}),
		closing:    make(chan struct{}),
		counters:   map[string]*classCounters{},
		notify:     map[Stream]chan struct{}{},
		wakeMaint:  make(chan struct{}, 1),
		claimMu:    map[Stream]*sync.Mutex{},
		cursor:     map[Stream]*atomic.Int64{},
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.now == nil {
		b.now = time.Now
	}
	if b.opts.FSUsage == nil {
		b.opts.FSUsage = filesystemUsage
	}
	for _, s := range Streams() {
		b.notify[s] = make(chan struct{}, 1)
		b.claimMu[s] = &sync.Mutex{}
		b.cursor[s] = &atomic.Int64{}
	}
	for _, c := range []string{protocol.ClassLog, protocol.ClassScreenshot, protocol.ClassDevice} {
		b.counters[c] = &classCounters{}
	}
	b.shotDir = filepath.Join(b.dir, "screenshots")
	if err := os.MkdirAll(b.shotDir, 0o750); err != nil {
		return nil, fmt.Errorf("buffer: create screenshot directory: %w", err)
	}
	b.deadDir = filepath.Join(b.dir, "dead-letters")
	if err := os.MkdirAll(b.deadDir, 0o750); err != nil {
		return nil, fmt.Errorf("buffer: create dead-letter directory: %w", err)
	}
	q, err := parseStreamQueries()
	if err != nil {
		return nil, err
	}
	b.streamQ = q
	if b.groupInsert, err = parseGroupInsert(); err != nil {
		return nil, err
	}
	if err := b.openOrQuarantine(ctx); err != nil {
		return nil, err
	}
	b.m = newMetrics(opts.Registerer, b)
	b.evaluate()
	return b, nil
}

// Dir is the directory holding the buffer file (the gateway keeps its API
// key file there too).
func (b *Buffer) Dir() string { return b.dir }

// Notify returns a channel that receives a value after rows of stream were
// added or released (capacity one: signals coalesce).
func (b *Buffer) Notify(s Stream) <-chan struct{} { return b.notify[s] }

func (b *Buffer) signal(s Stream) {
	select {
	case b.notify[s] <- struct{}{}:
	default:
	}
}

// newToken returns a new batch idempotency token.
func newToken() string { return uuid.Must(uuid.NewV7()).String() }
