package viewer

import (
	"net"
	"net/http"
	"strings"
)

// hostKey is the name in a Host header as compared with the allowed names: no port, no
// IPv6 brackets, lower case, no trailing dot.
func hostKey(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	return strings.ToLower(host)
}

// allowedHosts refuses requests addressed to a name the server does not answer to, with
// 421 Misdirected Request. This stops DNS rebinding: a page of attacker.example whose
// name is made to resolve to this server is same-origin with itself, so neither the
// browser's same-origin policy nor the cross-origin check can tell it apart; only the
// Host header it must send ("attacker.example") does.
func allowedHosts(names []string, next http.Handler) http.Handler {
	allowed := map[string]bool{}
	for _, n := range names {
		allowed[hostKey(n)] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowed[hostKey(r.Host)] {
			writeError(w, http.StatusMisdirectedRequest, "this server does not answer to the host name "+quote(hostKey(r.Host))+"; add it to http.hosts")
			return
		}
		next.ServeHTTP(w, r)
	})
}
