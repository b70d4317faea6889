package directory

import (
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
)

// Identity kinds: how monitoring data finds its employee.
const (
	KindWindowsSID     = "windows_sid"     // a Windows account's SID: the agents' user_sid
	KindComputer       = "computer"        // a computer the employee alone uses
	KindCardNumber     = "card_number"     // an access card: door terminals' card_number
	KindEmployeeNumber = "employee_number" // as a door terminal knows the employee
)

// Limits of the input.
const (
	MaxIdentities = 32  // identities per employee
	MaxQueryLen   = 100 // characters of a list's search query
)

// sidPattern is a Windows security identifier's string form: S-1-, the
// identifier authority, then one to fifteen sub-authorities.
var sidPattern = regexp.MustCompile(`^S-1-[0-9]{1,14}(-[0-9]{1,10}){1,15}$`)

// text checks a string field: trimmed, at most max characters, no control
// characters, and (when required) not empty. It returns the trimmed value.
func text(errs *apperr.FieldErrors, field, v string, required bool, max int) string {
	v = strings.TrimSpace(v)
	switch {
	case v == "" && required:
		*errs = append(*errs, apperr.Field(field, "is required"))
	case !utf8.ValidString(v):
		*errs = append(*errs, apperr.Field(field, "is not valid UTF-8"))
	case utf8.RuneCountInString(v) > max:
		*errs = append(*errs, apperr.Field(field, "must be at most %d characters", max))
	case strings.IndexFunc(v, unicode.IsControl) >= 0:
		*errs = append(*errs, apperr.Field(field, "must not contain control characters"))
	}
	return v
}

// optional checks an optional string field as text does; empty (or only
// spaces) is none.
func optional(errs *apperr.FieldErrors, field string, v *string, max int) *string {
	if v == nil {
		return nil
	}
	s := text(errs, field, *v, false, max)
	if s == "" {
		return nil
	}
	return &s
}

// validStatus reports whether s is an employee status.
func validStatus(s string) bool { return s == "active" || s == "inactive" }

// normalize validates in and returns it trimmed, with its defaults (status
// active), naming every field at fault.
func (in EmployeeInput) normalize() (EmployeeInput, error) {
	var errs apperr.FieldErrors
	out := EmployeeInput{DepartmentID: in.DepartmentID}
	if in.DepartmentID != nil && *in.DepartmentID <= 0 {
		errs = append(errs, apperr.Field("department_id", "must be a department's id"))
	}
	out.EmployeeNumber = text(&errs, "employee_number", in.EmployeeNumber, true, 64)
	out.FirstName = text(&errs, "first_name", in.FirstName, true, 255)
	out.LastName = text(&errs, "last_name", in.LastName, true, 255)
	out.Email = optional(&errs, "email", in.Email, 255)
	if out.Email != nil {
		if a, err := mail.ParseAddress(*out.Email); err != nil || a.Address != *out.Email {
			errs = append(errs, apperr.Field("email", "is not an e-mail address (name@example.com)"))
		}
	}
	out.Position = optional(&errs, "position", in.Position, 255)
	out.Status = strings.TrimSpace(in.Status)
	if out.Status == "" {
		out.Status = "active"
	}
	if !validStatus(out.Status) {
		errs = append(errs, apperr.Field("status", "must be active or inactive"))
	}
	if len(in.Identities) > MaxIdentities {
		errs = append(errs, apperr.Field("identities", "at most %d identities", MaxIdentities))
		return out, errs
	}
	seen := make(map[IdentityInput]int, len(in.Identities))
	for i, id := range in.Identities {
		f := fmt.Sprintf("identities/%d", i)
		n := len(errs)
		v := IdentityInput{Kind: strings.TrimSpace(id.Kind)}
		switch v.Kind {
		case KindWindowsSID, KindComputer, KindCardNumber:
			v.Value = text(&errs, f+"/value", id.Value, true, 255)
		case KindEmployeeNumber:
			v.Value = text(&errs, f+"/value", id.Value, true, 64)
		default:
			errs = append(errs, apperr.Field(f+"/kind", "must be one of windows_sid, computer, card_number, employee_number"))
		}
		if len(errs) > n {
			continue
		}
		if v.Kind == KindWindowsSID {
			v.Value = strings.ToUpper(v.Value)
			if !sidPattern.MatchString(v.Value) {
				errs = append(errs, apperr.Field(f+"/value", "is not a Windows SID (S-1-5-21-…)"))
				continue
			}
		}
		if j, dup := seen[v]; dup {
			errs = append(errs, apperr.Field(f+"/value", "repeats identities/%d", j))
			continue
		}
		seen[v] = i
		out.Identities = append(out.Identities, v)
	}
	return out, errs.Err()
}

// normalize validates a department's input.
func (in DepartmentInput) normalize() (DepartmentInput, error) {
	var errs apperr.FieldErrors
	out := DepartmentInput{ParentID: in.ParentID}
	if in.ParentID != nil && *in.ParentID <= 0 {
		errs = append(errs, apperr.Field("parent_id", "must be a department's id"))
	}
	out.Name = text(&errs, "name", in.Name, true, 255)
	return out, errs.Err()
}
