package buffer

// The writer goroutine and group commit: every write runs on one goroutine
// that owns the write connection; appends queued together are committed in
// one transaction (one fsync), and always before the next claim or delete.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/edge/buffer/bufferdb"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

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

func (b *Buffer) commitGroup(reqs []*appendReq) {
	start := time.Now()
	ok := b.admit(reqs)
	g, err := b.writeGroup(reqs, ok, true)
	if errors.Is(err, errGroupDuplicate) {
		// Rolled back: write it again row by row (groupinsert.go).
		g, err = b.writeGroup(reqs, ok, false)
	}
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
	b.nextSeq = g.seq
	b.applyDelta(g.delta)
	b.m.commitSeconds.Observe(time.Since(start).Seconds())
	for i, req := range reqs {
		if ok[i] {
			req.res <- appendRes{out: g.outs[i]}
		}
	}
	for class := range g.delta {
		b.signal(StreamForClass(class))
	}
	b.evaluate()
}

// group is what a committed group wrote: each request's outcomes, the rows
// added per class, and the next sequence number.
type group struct {
	outs  [][]Appended
	delta classDelta
	seq   int64
}

// writeGroup writes the admitted requests of a group in one transaction.
// With fast, the agent rows go in multi-row inserts (groupinsert.go) and
// errGroupDuplicate reports, after a rollback, that an event id was
// buffered already; without, every row is inserted on its own and a
// duplicate is told apart (no seq).
func (b *Buffer) writeGroup(reqs []*appendReq, ok []bool, fast bool) (group, error) {
	var g group
	nowMS := b.now().UnixMilli()
	ctx := context.Background()
	err := b.runTx(ctx, func(tx *sql.Tx) error {
		g = group{outs: make([][]Appended, len(reqs)), delta: classDelta{}, seq: b.nextSeq}
		// The statements prepared at open, bound to this transaction once.
		ts := b.txStmts(tx)
		q := bufferdb.New(ts)
		var rows []agentRow
		for i, req := range reqs {
			if !ok[i] {
				continue
			}
			out := make([]Appended, len(req.recs))
			firstSeq := g.seq
			for j := range req.recs {
				r := &req.recs[j]
				size := recSize(r)
				if fast && r.Class != protocol.ClassDevice {
					rows = append(rows, agentRow{rec: r, seq: g.seq, size: size})
					out[j] = Appended{Seq: g.seq}
					g.seq++
					g.delta.add(r.Class, size)
					continue
				}
				var n int64
				var err error
				if r.Class == protocol.ClassDevice {
					n, err = q.InsertDevice(ctx, bufferdb.InsertDeviceParams{EventID: r.EventID, Seq: g.seq,
						DeviceID: r.DeviceSerial, AdapterType: r.AdapterType, Payload: r.Payload, Size: size, CreatedAt: nowMS})
				} else {
					n, err = q.InsertAgent(ctx, bufferdb.InsertAgentParams{EventID: r.EventID, Seq: g.seq, Type: r.Type,
						Class: r.Class, Payload: r.Payload, Size: size, FileSize: r.FileSize, CreatedAt: nowMS})
				}
				if err != nil {
					return fmt.Errorf("insert event %s: %w", r.EventID, err)
				}
				if n == 0 {
					if fast {
						return errGroupDuplicate
					}
					out[j] = Appended{Duplicate: true}
					continue
				}
				out[j] = Appended{Seq: g.seq}
				g.seq++
				g.delta.add(r.Class, size)
			}
			g.outs[i] = out
			if tp := req.recs[0].TraceParent; tp != "" && g.seq > firstSeq {
				if err := q.InsertTraceContext(ctx, bufferdb.InsertTraceContextParams{FirstSeq: firstSeq, LastSeq: g.seq - 1,
					Class: req.recs[0].Class, TraceParent: tp, CreatedAt: nowMS}); err != nil {
					return fmt.Errorf("store trace context: %w", err)
				}
				b.traced.Store(true)
			}
		}
		var err error
		if b.insertArgs, err = b.insertAgentRows(ctx, ts, rows, nowMS, b.insertArgs); err != nil {
			return err
		}
		if g.seq != b.nextSeq {
			if err := q.SetNextSeq(ctx, strconv.FormatInt(g.seq, 10)); err != nil {
				return fmt.Errorf("store next sequence: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return group{}, err
	}
	return g, nil
}
