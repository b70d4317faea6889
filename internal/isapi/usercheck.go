package isapi

import "encoding/xml"

// UserCheck is the body of a 401 (and of some 403s): how many attempts
// remain before the lockout and, once locked, for how long.
type UserCheck struct {
	XMLName        xml.Name `xml:"userCheck" json:"-"`
	Version        string   `xml:"version,attr,omitempty" json:"-"`
	XMLNS          string   `xml:"xmlns,attr,omitempty" json:"-"`
	StatusValue    int      `xml:"statusValue" json:"statusValue"`
	StatusString   string   `xml:"statusString" json:"statusString"`
	IsIllegalLogin *bool    `xml:"isIllegalLogin,omitempty" json:"isIllegalLogin,omitempty"`
	// RetryLoginTime is the number of attempts left (nil when absent).
	RetryLoginTime *int `xml:"retryLoginTime,omitempty" json:"retryLoginTime,omitempty"`
	// LockStatus is "lock" or "unlock".
	LockStatus string `xml:"lockStatus,omitempty" json:"lockStatus,omitempty"`
	// UnlockTime is the seconds until the lock ends.
	UnlockTime int `xml:"unlockTime,omitempty" json:"unlockTime,omitempty"`
}

// Locked reports whether the account (or client address) is locked: the
// exact string "lock" ("unlock" contains it).
func (u UserCheck) Locked() bool { return u.LockStatus == "lock" }

type userCheckJSON struct {
	UserCheck *UserCheck `json:"userCheck"`
}

// DecodeUserCheck decodes an XML or JSON ({"userCheck":{…}}) userCheck.
func DecodeUserCheck(body []byte) (UserCheck, error) {
	var u UserCheck
	j := userCheckJSON{UserCheck: &u}
	if err := decode("userCheck", body, &j, &u); err != nil {
		return UserCheck{}, err
	}
	return u, nil
}
