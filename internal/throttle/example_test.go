package throttle_test

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/staffcontrol/staffcontrol/internal/throttle"
)

// A door that checks a secret: Check before verifying, Fail or Succeed
// after, WriteRefusal for a refused attempt. The prefix is the non-secret
// part of the credential that says which one it claims to be.
func Example() {
	lim, _ := throttle.New(throttle.Config{FreeFailures: 2}, throttle.Deps{})
	const secret = "enr_ABCD-the-right-secret"
	door := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		presented := r.Header.Get("Authorization")
		digest := sha256.Sum256([]byte(presented))
		att := throttle.Attempt{Kind: "enrolment", Source: throttle.Source(r, nil), Prefix: presented[:min(8, len(presented))], Credential: digest[:]}
		if d := lim.Check(att); !d.OK {
			throttle.WriteRefusal(w, d, "Authorization")
			return
		}
		if presented != secret { // the real check: a database lookup, a hash comparison, …
			lim.Fail(att, "unknown")
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		lim.Succeed(att)
		w.WriteHeader(http.StatusOK)
	})
	try := func(from, presented string) {
		r := httptest.NewRequest("POST", "/enrol", nil)
		r.RemoteAddr, r.Header["Authorization"] = from+":40000", []string{presented}
		w := httptest.NewRecorder()
		door.ServeHTTP(w, r)
		fmt.Println(strings.TrimSpace(fmt.Sprintln(from, w.Code, w.Header().Get("Retry-After"), strings.TrimSpace(w.Body.String()))))
	}
	for range 4 {
		try("192.0.2.1", "enr_ABCD-a-guess")
	}
	try("198.51.100.7", secret) // another address: the prefix is locked, this address is clean
	try("192.0.2.1", secret)    // accepted before: passes the guessing address's lock too
	// Output:
	// 192.0.2.1 401
	// 192.0.2.1 401
	// 192.0.2.1 401
	// 192.0.2.1 429 1 {"error":"throttled","field":"Authorization","message":"too many failed attempts from this address; retry in 1 s"}
	// 198.51.100.7 200
	// 192.0.2.1 200
}
