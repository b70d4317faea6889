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
// queries.sql): rows are written twice in their life (insert and delete),
// never rewritten to be claimed.
package buffer

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	_ "modernc.org/sqlite" // the pure-Go SQLite driver, registered as "sqlite"

	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

//go:embed schema.sql queries.sql
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

// Level is the back-pressure level of the buffer.
type Level int32

// Back-pressure levels.
const (
	LevelNormal   Level = 0
	LevelWarning  Level = 1
	LevelCritical Level = 2
)

// String returns normal, warning or critical.
func (l Level) String() string {
	switch l {
	case LevelWarning:
		return "warning"
	case LevelCritical:
		return "critical"
	default:
		return "normal"
	}
}

// Thresholds with hysteresis: a level is entered at Enter and left below Exit.
const (
	WarningEnter  = 0.80
	WarningExit   = 0.75
	CriticalEnter = 0.95
	CriticalExit  = 0.90
)

// Options configures Open. Path and MaxBytes are required.
type Options struct {
	// Path of the SQLite file; its directory also holds screenshot files.
	Path string
	// MaxBytes is the buffer's size limit (buffer.max_size).
	MaxBytes int64
	// Retention drops unsent rows older than this (buffer.retention_days).
	Retention time.Duration
	// Synchronous is FULL (power-loss durable, default) or NORMAL.
	Synchronous string
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
	// DeadLetterMaxEvents and DeadLetterMaxBytes bound the dead letters
	// (buffer.dead_letter_max_events, buffer.dead_letter_max_bytes): over
	// either, the oldest are purged. Zero means 10,000 events and a tenth
	// of MaxBytes.
	DeadLetterMaxEvents int
	DeadLetterMaxBytes  int64
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
}

// Appended is the outcome of one Record.
type Appended struct {
	// Seq is the sequence number assigned; 0 for a duplicate.
	Seq int64
	// Duplicate is true when the event id was already buffered.
	Duplicate bool
}

type appendReq struct {
	recs []Record
	res  chan appendRes
}

// writeJob is a write transaction run by the writer goroutine.
type writeJob struct {
	ctx context.Context
	fn  func(tx *sql.Tx) error
	// lazy commits without its own fsync (see withLazyTx).
	lazy bool
	done chan error
}

type appendRes struct {
	out []Appended
	err error
}

type classCounters struct {
	rows, bytes               int64
	claimedRows, claimedBytes int64
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
	db    *sql.DB
	q     map[string]string
	stmts map[string]*sql.Stmt // prepared on db

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
	// cursor is each stream's claim cursor (see queries.sql), changed only
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
	q, err := parseQueries()
	if err != nil {
		return nil, err
	}
	b.q = q
	if err := b.openOrQuarantine(ctx); err != nil {
		return nil, err
	}
	b.m = newMetrics(opts.Registerer, b)
	b.evaluate()
	return b, nil
}

func parseQueries() (map[string]string, error) {
	data, err := sqlFiles.ReadFile("queries.sql")
	if err != nil {
		return nil, fmt.Errorf("buffer: read queries: %w", err)
	}
	out := map[string]string{}
	name := ""
	var cur strings.Builder
	flush := func() {
		if name != "" {
			out[name] = strings.TrimSpace(cur.String())
		}
		cur.Reset()
	}
	for _, line := range strings.Split(string(data), "\n") {
		if n, ok := strings.CutPrefix(line, "-- name: "); ok {
			flush()
			name = strings.TrimSpace(n)
			continue
		}
		if strings.HasPrefix(line, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	flush()
	// Expand the per-stream templates (see queries.sql).
	for name, text := range out {
		if !strings.Contains(text, "{table}") && !strings.Contains(text, "{stream}") {
			continue
		}
		delete(out, name)
		for _, st := range Streams() {
			fileSize, typ, deviceID, adapter := "file_size", "type", "''", "''"
			if st == StreamDevice {
				fileSize, typ, deviceID, adapter = "0", "adapter_type", "device_id", "adapter_type"
			}
			out[name+":"+string(st)] = strings.NewReplacer("{table}", st.tableName(), "{class}", st.class(),
				"{stream}", string(st), "{file_size}", fileSize, "{type}", typ, "{device_id}", deviceID,
				"{adapter_type}", adapter).Replace(text)
		}
	}
	return out, nil
}

// sq returns the copy of template query name for stream s.
func (b *Buffer) sq(name string, s Stream) string { return b.q[name+":"+string(s)] }

func (b *Buffer) dsn() string {
	if b.opts.Driver == "sqlite3" {
		return "file:" + b.opts.Path + "?_journal_mode=WAL&_synchronous=" + b.opts.Synchronous +
			"&_busy_timeout=10000&_foreign_keys=on&_txlock=immediate&_journal_size_limit=67108864&_locking_mode=EXCLUSIVE"
	}
	v := url.Values{}
	// EXCLUSIVE before WAL: the WAL index then lives in heap memory. The
	// driver runs the _pragma list sorted by name (busy_timeout first), so
	// journal_mode(WAL) there would run before locking_mode and, on a file
	// already in WAL mode, map a -shm index; _journal_mode runs after the
	// list.
	v.Add("_pragma", "locking_mode(EXCLUSIVE)")
	v.Add("_pragma", "busy_timeout(10000)")
	v.Set("_journal_mode", "WAL")
	v.Add("_pragma", "synchronous("+b.opts.Synchronous+")")
	v.Add("_pragma", "foreign_keys(ON)")
	v.Add("_pragma", "journal_size_limit(67108864)")
	v.Set("_txlock", "immediate")
	return "file:" + b.opts.Path + "?" + v.Encode()
}

func (b *Buffer) openDB(ctx context.Context) error {
	db, err := sql.Open(b.opts.Driver, b.dsn())
	if err != nil {
		return fmt.Errorf("buffer: open %s: %w", b.opts.Path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	schema, err := sqlFiles.ReadFile("schema.sql")
	if err != nil {
		db.Close()
		return fmt.Errorf("buffer: read schema: %w", err)
	}
	if _, err := db.ExecContext(ctx, string(schema)); err != nil {
		db.Close()
		if strings.Contains(err.Error(), "locked") || strings.Contains(err.Error(), "SQLITE_BUSY") {
			return fmt.Errorf("buffer: %s is in use by another process (one gateway per buffer.path): %w", b.opts.Path, err)
		}
		return fmt.Errorf("buffer: apply schema to %s: %w", b.opts.Path, err)
	}
	// Checkpoints run in the maintenance loop between transactions, never
	// inside a commit.
	if _, err := db.ExecContext(ctx, "PRAGMA wal_autocheckpoint=0"); err != nil {
		db.Close()
		return fmt.Errorf("buffer: disable autocheckpoint: %w", err)
	}
	b.db = db
	return nil
}

// recover loads the sequence and counters and removes orphan files.
func (b *Buffer) recover(ctx context.Context) error {
	var next, maxSeq int64
	if err := b.db.QueryRowContext(ctx, b.q["get_next_seq"]).Scan(&next); err != nil {
		return fmt.Errorf("buffer: read next sequence: %w", err)
	}
	if err := b.db.QueryRowContext(ctx, b.q["max_seq"]).Scan(&maxSeq); err != nil {
		return fmt.Errorf("buffer: read max sequence: %w", err)
	}
	if maxSeq >= next {
		next = maxSeq + 1
	}
	b.nextSeq = next
	if err := b.upgradeFormat(ctx); err != nil {
		return err
	}
	for _, s := range Streams() {
		var v string
		err := b.db.QueryRowContext(ctx, b.q["get_state"], s.cursorKey()).Scan(&v)
		if err != nil && err != sql.ErrNoRows {
			return fmt.Errorf("buffer: read %s claim cursor: %w", s, err)
		}
		var cur int64
		if v != "" {
			if cur, err = strconv.ParseInt(v, 10, 64); err != nil {
				return fmt.Errorf("buffer: %s claim cursor %q: %w", s, v, err)
			}
		}
		b.cursor[s].Store(cur)
		res, err := b.db.ExecContext(ctx, b.sq("delete_acked_orphans", s), cur)
		if err != nil {
			return fmt.Errorf("buffer: remove acknowledged %s rows: %w", s, err)
		}
		if n, _ := res.RowsAffected(); n > 0 {
			b.log.Info("removed rows of batches acknowledged before a restart", "stream", s, "rows", n)
		}
		var c classCounters
		if err := b.db.QueryRowContext(ctx, b.sq("class_stats", s), cur, cur).Scan(&c.rows, &c.bytes, &c.claimedRows, &c.claimedBytes); err != nil {
			return fmt.Errorf("buffer: count %s rows: %w", s, err)
		}
		b.counters[s.class()] = &c
	}
	if err := b.recoverDeadLetters(ctx); err != nil {
		return err
	}
	return b.removeOrphanFiles(ctx)
}

func (b *Buffer) removeOrphanFiles(ctx context.Context) error {
	entries, err := os.ReadDir(b.shotDir)
	if err != nil {
		return fmt.Errorf("buffer: list screenshots: %w", err)
	}
	if len(entries) == 0 {
		return nil
	}
	known := map[string]bool{}
	rows, err := b.db.QueryContext(ctx, b.q["screenshot_ids"])
	if err != nil {
		return fmt.Errorf("buffer: list screenshot rows: %w", err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return fmt.Errorf("buffer: list screenshot rows: %w", err)
		}
		known[id] = true
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("buffer: list screenshot rows: %w", err)
	}
	removed := 0
	for _, e := range entries {
		if !known[e.Name()] {
			if err := os.Remove(filepath.Join(b.shotDir, e.Name())); err == nil {
				removed++
			}
		}
	}
	if removed > 0 {
		b.log.Info("removed orphaned screenshot files", "count", removed)
	}
	return nil
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

// Append commits recs in one group commit and returns each record's outcome.
// It returns only after the commit is durable (per the synchronous setting).
// It refuses all records with ErrFull at the critical level or when they
// would exceed the size limit, and screenshots with ErrShedding at the
// warning level. Nothing is written when an error is returned.
func (b *Buffer) Append(ctx context.Context, recs []Record) ([]Appended, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	b.lastAppend.Store(time.Now().UnixNano())
	req := &appendReq{recs: recs, res: make(chan appendRes, 1)}
	select {
	case b.appendCh <- req:
	case <-b.closing:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case r := <-req.res:
		return r.out, r.err
	case <-b.writerDone:
		select {
		case r := <-req.res:
			return r.out, r.err
		default:
			return nil, ErrClosed
		}
	case <-ctx.Done():
		// The writer may still commit the events; the caller does not ack.
		return nil, ctx.Err()
	}
}

// writerLoop owns the write connection. Appends waiting in the queue are
// committed before each job, so a job delays an acknowledgement by at most
// one job's (chunk-bounded) transaction.
func (b *Buffer) writerLoop() {
	defer close(b.writerDone)
	for {
		select {
		case <-b.closing:
			for {
				select {
				case req := <-b.appendCh:
					req.res <- appendRes{err: ErrClosed}
				case job := <-b.jobCh:
					job.done <- ErrClosed
				default:
					return
				}
			}
		case req := <-b.appendCh:
			b.commitGroup(b.gather([]*appendReq{req}))
		case job := <-b.jobCh:
			if reqs := b.gather(nil); len(reqs) > 0 {
				b.commitGroup(reqs)
			}
			if job.lazy {
				job.done <- b.runLazyTx(job.ctx, job.fn)
			} else {
				job.done <- b.runTx(job.ctx, job.fn)
			}
		}
	}
}

// gather adds the appends already queued to reqs, up to MaxGroupEvents.
func (b *Buffer) gather(reqs []*appendReq) []*appendReq {
	n := 0
	for _, r := range reqs {
		n += len(r.recs)
	}
	for n < b.opts.MaxGroupEvents {
		select {
		case r := <-b.appendCh:
			reqs = append(reqs, r)
			n += len(r.recs)
		default:
			return reqs
		}
	}
	return reqs
}

func recSize(r *Record) int64 { return int64(len(r.Payload)) + r.FileSize + rowOverhead }

// admit decides, in order, which requests of a group may be written.
func (b *Buffer) admit(reqs []*appendReq) []bool {
	ok := make([]bool, len(reqs))
	level := Level(b.level.Load())
	b.mu.Lock()
	total := b.totalBytesLocked()
	b.mu.Unlock()
	for i, req := range reqs {
		var add int64
		shots := false
		for j := range req.recs {
			add += recSize(&req.recs[j])
			if req.recs[j].Class == protocol.ClassScreenshot {
				shots = true
			}
		}
		switch {
		case level >= LevelCritical || total+add > b.opts.MaxBytes:
			req.res <- appendRes{err: ErrFull}
			b.m.rejected.WithLabelValues("buffer_full").Add(float64(len(req.recs)))
		case shots && level >= LevelWarning:
			req.res <- appendRes{err: ErrShedding}
			b.m.rejected.WithLabelValues("shedding").Add(float64(len(req.recs)))
		default:
			ok[i] = true
			total += add
		}
	}
	return ok
}

func (b *Buffer) commitGroup(reqs []*appendReq) {
	start := time.Now()
	ok := b.admit(reqs)
	outs := make([][]Appended, len(reqs))
	delta := map[string]*classCounters{}
	seq := b.nextSeq
	nowMS := b.now().UnixMilli()
	err := b.runTx(context.Background(), func(tx *sql.Tx) error {
		ins := tx.Stmt(b.stmts["insert_agent"])
		defer ins.Close()
		insDev := tx.Stmt(b.stmts["insert_device"])
		defer insDev.Close()
		for i, req := range reqs {
			if !ok[i] {
				continue
			}
			out := make([]Appended, len(req.recs))
			for j := range req.recs {
				r := &req.recs[j]
				size := recSize(r)
				var res sql.Result
				var err error
				if r.Class == protocol.ClassDevice {
					res, err = insDev.Exec(r.EventID, seq, r.DeviceSerial, r.AdapterType, r.Payload, size, nowMS)
				} else {
					res, err = ins.Exec(r.EventID, seq, r.Type, r.Class, r.Payload, size, r.FileSize, nowMS)
				}
				if err != nil {
					return fmt.Errorf("insert event %s: %w", r.EventID, err)
				}
				n, err := res.RowsAffected()
				if err != nil {
					return fmt.Errorf("insert event %s: %w", r.EventID, err)
				}
				if n == 0 {
					out[j] = Appended{Duplicate: true}
					continue
				}
				out[j] = Appended{Seq: seq}
				seq++
				d := delta[r.Class]
				if d == nil {
					d = &classCounters{}
					delta[r.Class] = d
				}
				d.rows++
				d.bytes += size
			}
			outs[i] = out
		}
		if seq != b.nextSeq {
			if _, err := tx.Exec(b.q["set_next_seq"], seq); err != nil {
				return fmt.Errorf("store next sequence: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		err = fmt.Errorf("buffer: commit: %w", err)
		b.log.Error("group commit failed", "err", err, "requests", len(reqs))
		for i, req := range reqs {
			if ok[i] {
				req.res <- appendRes{err: err}
			}
		}
		return
	}
	b.nextSeq = seq
	b.mu.Lock()
	for class, d := range delta {
		c := b.counters[class]
		c.rows += d.rows
		c.bytes += d.bytes
	}
	b.mu.Unlock()
	b.m.commitSeconds.Observe(time.Since(start).Seconds())
	for i, req := range reqs {
		if ok[i] {
			req.res <- appendRes{out: outs[i]}
		}
	}
	for class := range delta {
		b.signal(StreamForClass(class))
	}
	b.evaluate()
}

func (b *Buffer) prepare(ctx context.Context) error {
	b.stmts = map[string]*sql.Stmt{}
	for _, name := range []string{"insert_agent", "insert_device"} {
		s, err := b.db.PrepareContext(ctx, b.q[name])
		if err != nil {
			return fmt.Errorf("buffer: prepare %s: %w", name, err)
		}
		b.stmts[name] = s
	}
	return nil
}

// Chunk sizing: while agents send, claims and deletes stay short so that
// acknowledgements do not wait behind them; with no append for idleAfter,
// nobody waits, and larger chunks drain a backlog faster.
const (
	idleAfter       = 250 * time.Millisecond
	idleChunkFactor = 4
)

// chunkRows is the row bound of the next claim or delete transaction.
func (b *Buffer) chunkRows() int {
	if time.Since(time.Unix(0, b.lastAppend.Load())) > idleAfter {
		return b.opts.WriteChunkRows * idleChunkFactor
	}
	return b.opts.WriteChunkRows
}

// withTx runs fn in a write transaction on the writer goroutine and
// returns once it committed or rolled back. Once submitted, the job's
// outcome is always awaited (a cancelled ctx makes fn fail quickly), so the
// caller never misses a commit it must account for.
func (b *Buffer) withTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return b.submit(&writeJob{ctx: ctx, fn: fn, done: make(chan error, 1)})
}

// withLazyTx is withTx for a transaction whose loss to a power cut is
// harmless: it commits with synchronous=OFF, so it costs no fsync of its
// own. The WAL is written in order, so the next durable commit (every
// append's) or checkpoint makes it durable too; until then a power cut can
// only undo it, whole (WAL frames are checksummed). Acknowledgements use
// it: an undone Ack resends its batch under the same token, which the
// cloud answers from its idempotency store.
func (b *Buffer) withLazyTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return b.submit(&writeJob{ctx: ctx, fn: fn, lazy: true, done: make(chan error, 1)})
}

func (b *Buffer) submit(job *writeJob) error {
	ctx := job.ctx
	select {
	case b.jobCh <- job:
	case <-b.closing:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-job.done:
		return err
	case <-b.writerDone:
		select {
		case err := <-job.done:
			return err
		default:
			return ErrClosed
		}
	}
}

// runLazyTx runs fn like runTx, with synchronous=OFF for its commit only.
// It holds the connection from the first PRAGMA to the last, so that no
// other statement (a checkpoint, say) runs with the lowered setting; if the
// setting cannot be restored, the connection is discarded (the pool opens a
// new one with the DSN's setting).
func (b *Buffer) runLazyTx(ctx context.Context, fn func(tx *sql.Tx) error) (err error) {
	if b.opts.Synchronous == "NORMAL" {
		return b.runTx(ctx, fn)
	}
	conn, err := b.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connection: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "PRAGMA synchronous=OFF"); err != nil {
		return fmt.Errorf("lower synchronous: %w", err)
	}
	defer func() {
		if _, rerr := conn.ExecContext(context.Background(), "PRAGMA synchronous="+b.opts.Synchronous); rerr != nil {
			b.log.Error("cannot restore synchronous; reopening the connection", "err", rerr)
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			err = errors.Join(err, fmt.Errorf("restore synchronous: %w", rerr))
		}
	}()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// runTx runs fn in a transaction on the write connection (writer goroutine
// only).
func (b *Buffer) runTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func (b *Buffer) totalBytesLocked() int64 {
	t := b.deadBytes
	for _, c := range b.counters {
		t += c.bytes
	}
	return t
}

func loadFloat(a *atomic.Uint64) float64 { return float64frombits(a.Load()) }

// evaluate recomputes usage and the back-pressure level with hysteresis.
func (b *Buffer) evaluate() {
	b.mu.Lock()
	total := b.totalBytesLocked()
	b.mu.Unlock()
	u := float64(total) / float64(b.opts.MaxBytes)
	if fs := loadFloat(&b.fsUsage); fs > u {
		u = fs
	}
	b.usage.Store(float64bits(u))
	old := Level(b.level.Load())
	next := old
	switch old {
	case LevelNormal:
		if u >= CriticalEnter {
			next = LevelCritical
		} else if u >= WarningEnter {
			next = LevelWarning
		}
	case LevelWarning:
		if u >= CriticalEnter {
			next = LevelCritical
		} else if u < WarningExit {
			next = LevelNormal
		}
	case LevelCritical:
		if u < WarningExit {
			next = LevelNormal
		} else if u < CriticalExit {
			next = LevelWarning
		}
	}
	if next == old {
		return
	}
	if !b.level.CompareAndSwap(int32(old), int32(next)) {
		return
	}
	b.m.level.Set(float64(next))
	if next > old {
		b.m.overflow.WithLabelValues(next.String()).Inc()
		lvl := slog.LevelWarn
		if next == LevelCritical {
			lvl = slog.LevelError
		}
		b.log.Log(context.Background(), lvl, "buffer usage rose to a back-pressure level",
			"buffer_level", next.String(), "usage", u, "bytes", total, "max_bytes", b.opts.MaxBytes)
		select {
		case b.wakeMaint <- struct{}{}:
		default:
		}
	} else {
		b.log.Info("buffer usage fell", "buffer_level", next.String(), "usage", u)
	}
}

// Level returns the current back-pressure level.
func (b *Buffer) Level() Level { return Level(b.level.Load()) }

// Usage returns the usage ratio: the larger of accounted bytes ÷ max size
// and filesystem fullness.
func (b *Buffer) Usage() float64 { return loadFloat(&b.usage) }

// newToken returns a new batch idempotency token.
func newToken() string { return uuid.Must(uuid.NewV7()).String() }

// encodeDrops marshals a drop list (never null).
func encodeDrops(d []protocol.Drop) string {
	if len(d) == 0 {
		return "[]"
	}
	out, _ := json.Marshal(d)
	return string(out)
}
