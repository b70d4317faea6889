// Package report computes the reports of issue 15 (parts 1–2): one
// implementation behind the Dashboard API and staffctl report.
//
// Reports: EmployeeDays (per employee and local day), Summary (a
// department's subtree or the organisation, ranked), Attendance (device
// events against the report policy's schedule), Reconcile (attendance
// against activity) and UnknownBadges; CSV writers stream each.
//
// Semantics (docs/architecture.md, "Reports"; the tests compute them
// independently):
//
//   - Days are [local midnight, next local midnight) in the organisation's
//     IANA zone (organizations.time_zone): 23 or 25 hours on DST days. A
//     period is From..To inclusive, at most 366 days; days that have not
//     begun are left out. Rows are clipped at day boundaries.
//   - Rows belong to an employee by user_sid = one of its windows_sid
//     identities (several merge); device events by employee number (the
//     employee's own or an employee_number identity), else by card. Sids no
//     visible employee owns are counted (Summary.Unattributed); badges
//     nobody owns are listed (UnknownBadges).
//   - Activity is minute occupancy: minute m of the day is occupied when an
//     active_windows interval [datetime, datetime + max(duration, 0)) of any
//     of the employee's sids overlaps it with positive length (a zero or
//     NULL duration occupies the minute holding datetime); OR across sids
//     and computers. FirstActivity/LastActivity are the start of the first
//     and the end of the last occupied minute. Between them, an unoccupied
//     run shorter than the policy's activity.idle_seconds (rounded up to
//     minutes) is a short pause and counts as active, a longer one is idle:
//     ActiveSeconds + IdleSeconds = LastActivity − FirstActivity;
//     OccupiedSeconds counts occupied minutes only.
//   - Usage: per sid, the seconds of the union of one key's intervals
//     clipped to the day, summed over sids; windows keyed by (process_name,
//     URL host), sites (visited_sites) by host. Top applications sum the
//     window keys per process name, top sites the site keys per host (the
//     TopN largest, ties by name). A window key is productive or
//     unproductive by its host's category when the host is categorised
//     (a site matches its host and any subdomain), else by its process's
//     (case-insensitive exact), else neutral; productive wins a tie.
//   - Sessions: the day's user_sessions events in order (time, computer,
//     type), and the last event before the day (CarriedSession: the state
//     the day starts in), looked for at most 31 days before the period.
//   - Attendance: the first badge that is not an exit (or the first badge),
//     the last that is not an entry (or the last), time on site between
//     them; late after start + grace, early before end − grace (wall-clock
//     times of the day); absent on a scheduled day with no badge for an
//     active employee. Reconcile: a badge with no occupied minute, or
//     occupied minutes with no badge.
//
// Rollups: monitoring.activity_days holds each (organisation, sid, day)'s
// minute mask and activity_day_usage its usage, maintained by the
// Maintainer from the dirty hours the insert functions mark (migration
// 00026). With Options.UseRollups a day of an employee is read from them
// when it is closed (its end is SafetyLag in the past), no dirty hour of
// its sids touches it and every sid's row is in the organisation's current
// zone (a sid without a row had no activity that day, unless a row of
// another zone lies beside it); with a separate time-series database, a
// day touched by the main database's fallback rows is read raw. Otherwise
// the day is computed from the raw rows, with the same functions the
// Maintainer uses: the result is identical.
//
// Every read runs in the caller's tenant transaction (postgres.InTenant)
// through the monitoring_read views and the row-level security of the
// people tables, so a department lead or an employee gets exactly the rows
// of their scope. Reports stream employee by employee; the rows are read
// for chunks of 25 employees at a time (a few queries per chunk, memory
// bounded by the chunk).
package report
