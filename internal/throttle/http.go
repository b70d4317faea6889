package throttle

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// HeaderForwardedFor is the proxy header Source honours from a trusted
// proxy.
const HeaderForwardedFor = "X-Forwarded-For"

// ParseTrustedProxies parses a comma-separated list of addresses and CIDR
// prefixes (e.g. "10.0.0.0/8, 192.0.2.7"); empty means none.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if strings.Contains(f, "/") {
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return nil, fmt.Errorf("%q is not an address or CIDR prefix", f)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not an address or CIDR prefix", f)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

func trusted(a netip.Addr, proxies []netip.Prefix) bool {
	for _, p := range proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Source is the address a request counts against: the TCP peer, unless the
// peer is one of the trusted proxies; then the X-Forwarded-For hops are
// walked from the right and the first one that is not a trusted proxy is
// the source (a hop that does not parse ends the walk at the hop before
// it). With no trusted proxies the header is ignored.
func Source(r *http.Request, proxies []netip.Prefix) netip.Addr {
	peer := remoteAddr(r.RemoteAddr)
	if len(proxies) == 0 || !trusted(peer, proxies) {
		return peer
	}
	hops := strings.Split(strings.Join(r.Header.Values(HeaderForwardedFor), ","), ",")
	src := peer
	for i := len(hops) - 1; i >= 0; i-- {
		h := strings.TrimSpace(hops[i])
		if h == "" {
			continue
		}
		a := remoteAddr(h)
		if !a.IsValid() {
			break
		}
		src = a
		if !trusted(a, proxies) {
			break
		}
	}
	return src
}

// remoteAddr parses "host:port", "[v6]:port" or a bare address.
func remoteAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return netip.Addr{}
	}
	return a.WithZone("").Unmap()
}

// RetryAfterSeconds is d in whole seconds, rounded up, at least 1.
func RetryAfterSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	if s < 1 {
		return 1
	}
	return s
}

// WriteRefusal answers a refused attempt: 429, Retry-After in seconds and a
// protocol.ErrorResponse (error "throttled") whose field names the
// credential (e.g. "X-API-Key") and whose message says which limit refused.
func WriteRefusal(w http.ResponseWriter, d Decision, field string) {
	secs := RetryAfterSeconds(d.RetryAfter)
	why := "too many failed attempts from this address"
	if d.By == ByPrefix {
		why = "too many failed attempts for this credential"
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(protocol.HeaderRetryAfter, strconv.Itoa(secs))
	w.WriteHeader(http.StatusTooManyRequests)
	_ = json.NewEncoder(w).Encode(protocol.ErrorResponse{Error: protocol.ErrCodeThrottled, Field: field,
		Message: fmt.Sprintf("%s; retry in %d s", why, secs)})
}
