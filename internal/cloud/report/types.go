package report

import "time"

// Period is a range of local days of the organisation, both inclusive,
// as "YYYY-MM-DD".
type Period struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// MaxDays is the longest period a report covers.
const MaxDays = 366

// EmployeeDaysQuery selects the employees of a per-employee report:
// EmployeeIDs (empty: every employee in the caller's scope), narrowed to
// DepartmentID's subtree when set.
type EmployeeDaysQuery struct {
	Period
	EmployeeIDs  []int64 `json:"employee_ids,omitempty"`
	DepartmentID *int64  `json:"department_id,omitempty"`
}

// SummaryQuery selects a summary: the organisation (DepartmentID nil) or a
// department's subtree.
type SummaryQuery struct {
	Period
	DepartmentID *int64 `json:"department_id,omitempty"`
}

// Usage is the time of one application or site in a day or period.
type Usage struct {
	Name    string `json:"name"`
	Seconds int64  `json:"seconds"`
	Events  int64  `json:"events"`
	// Category is productive, neutral or unproductive.
	Category string `json:"category"`
}

// SessionEvent is one user_sessions event (login, logout, lock, unlock).
type SessionEvent struct {
	Type     string    `json:"type"`
	At       time.Time `json:"at"`
	Computer string    `json:"computer"`
}

// EmployeeDay is one employee's local day.
type EmployeeDay struct {
	EmployeeID     int64  `json:"employee_id"`
	EmployeeNumber string `json:"employee_number"`
	Name           string `json:"name"`
	DepartmentID   *int64 `json:"department_id"`
	// Date is the local day, YYYY-MM-DD; DayStart and DayEnd its bounds.
	Date     string    `json:"date"`
	DayStart time.Time `json:"day_start"`
	DayEnd   time.Time `json:"day_end"`
	// FirstActivity is the start of the first active minute, LastActivity
	// the end of the last one (nil without activity).
	FirstActivity *time.Time `json:"first_activity"`
	LastActivity  *time.Time `json:"last_activity"`
	// OccupiedSeconds is 60 × the minutes some window of the employee
	// overlapped; ActiveSeconds adds the short pauses; IdleSeconds is the
	// rest of [FirstActivity, LastActivity).
	OccupiedSeconds int64 `json:"occupied_seconds"`
	ActiveSeconds   int64 `json:"active_seconds"`
	IdleSeconds     int64 `json:"idle_seconds"`
	// The windows' time by the policy's productivity categories.
	ProductiveSeconds   int64   `json:"productive_seconds"`
	NeutralSeconds      int64   `json:"neutral_seconds"`
	UnproductiveSeconds int64   `json:"unproductive_seconds"`
	TopApplications     []Usage `json:"top_applications"`
	TopSites            []Usage `json:"top_sites"`
	// Sessions are the day's session events in order; CarriedSession the
	// last event before the day (the state the day starts in), if any.
	Sessions       []SessionEvent `json:"sessions"`
	CarriedSession *SessionEvent  `json:"carried_session"`
}

// Totals are sums over employee-days.
type Totals struct {
	ActiveSeconds       int64 `json:"active_seconds"`
	IdleSeconds         int64 `json:"idle_seconds"`
	OccupiedSeconds     int64 `json:"occupied_seconds"`
	ProductiveSeconds   int64 `json:"productive_seconds"`
	NeutralSeconds      int64 `json:"neutral_seconds"`
	UnproductiveSeconds int64 `json:"unproductive_seconds"`
	DaysActive          int   `json:"days_active"`
}

func (t *Totals) add(o Totals) {
	t.ActiveSeconds += o.ActiveSeconds
	t.IdleSeconds += o.IdleSeconds
	t.OccupiedSeconds += o.OccupiedSeconds
	t.ProductiveSeconds += o.ProductiveSeconds
	t.NeutralSeconds += o.NeutralSeconds
	t.UnproductiveSeconds += o.UnproductiveSeconds
	t.DaysActive += o.DaysActive
}

// EmployeeTotals is one employee's line of a summary.
type EmployeeTotals struct {
	Rank           int    `json:"rank"`
	EmployeeID     int64  `json:"employee_id"`
	EmployeeNumber string `json:"employee_number"`
	Name           string `json:"name"`
	DepartmentID   *int64 `json:"department_id"`
	Totals
}

// DepartmentTotals is one department's line of a summary: the sums over
// the employees of its subtree.
type DepartmentTotals struct {
	Rank         int    `json:"rank"`
	DepartmentID int64  `json:"department_id"`
	Name         string `json:"name"`
	ParentID     *int64 `json:"parent_id"`
	Employees    int    `json:"employees"`
	Totals
}

// Unattributed counts the user sids with activity in the period that are
// no visible employee's windows_sid identity (only a whole-organisation
// role sees any).
type Unattributed struct {
	Sids    int      `json:"sids"`
	Samples []string `json:"samples"`
}

// Summary is a department's or the organisation's sums over a period,
// employees and departments ranked by active time.
type Summary struct {
	Period       Period             `json:"period"`
	TimeZone     string             `json:"time_zone"`
	DepartmentID *int64             `json:"department_id"`
	Totals       Totals             `json:"totals"`
	Employees    []EmployeeTotals   `json:"employees"`
	Departments  []DepartmentTotals `json:"departments"`
	Unattributed Unattributed       `json:"unattributed"`
}

// Badge is one device event.
type Badge struct {
	At             time.Time `json:"at"`
	DeviceID       *int64    `json:"device_id"`
	DeviceSerial   string    `json:"device_serial"`
	Door           *int32    `json:"door"`
	Direction      string    `json:"direction"`
	EmployeeNumber string    `json:"employee_number"`
	CardNumber     string    `json:"card_number"`
}

// AttendanceDay is one employee's local day at the doors, against the
// report policy's working schedule.
type AttendanceDay struct {
	EmployeeID     int64  `json:"employee_id"`
	EmployeeNumber string `json:"employee_number"`
	Name           string `json:"name"`
	DepartmentID   *int64 `json:"department_id"`
	Date           string `json:"date"`
	Scheduled      bool   `json:"scheduled"`
	// FirstIn and LastOut are nil without a badge event.
	FirstIn       *time.Time `json:"first_in"`
	LastOut       *time.Time `json:"last_out"`
	OnSiteSeconds int64      `json:"on_site_seconds"`
	Late          bool       `json:"late"`
	EarlyLeave    bool       `json:"early_departure"`
	Absent        bool       `json:"absent"`
	Badges        int        `json:"badges"`
}

// Mismatch kinds.
const (
	BadgeWithoutActivity = "badge_without_activity"
	ActivityWithoutBadge = "activity_without_badge"
)

// Mismatch is an employee-day where the doors and the computers disagree.
type Mismatch struct {
	EmployeeID     int64      `json:"employee_id"`
	EmployeeNumber string     `json:"employee_number"`
	Name           string     `json:"name"`
	Date           string     `json:"date"`
	Kind           string     `json:"kind"`
	FirstBadge     *time.Time `json:"first_badge"`
	FirstActivity  *time.Time `json:"first_activity"`
}
