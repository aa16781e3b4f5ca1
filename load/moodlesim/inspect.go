package moodlesim

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
)

// InspectPrefix is the path under which the simulator answers inspection
// requests (GET /_sim/state, GET /_sim/calls). Moodle has no such paths.
const InspectPrefix = "/_sim/"

// inspect answers GET /_sim/state and GET /_sim/calls, to loopback clients
// only: the state holds every user of the site.
func (s *Server) inspect(w http.ResponseWriter, r *http.Request, what string) {
	if !fromLoopback(r) {
		http.Error(w, "moodlesim: inspection is only answered to loopback clients", http.StatusForbidden)
		return
	}
	var v any
	switch what {
	case "state":
		v = s.State()
	case "calls":
		v = s.Calls()
	default:
		http.Error(w, "moodlesim: unknown inspection path; use "+InspectPrefix+"state or "+InspectPrefix+"calls", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "moodlesim: inspection is read-only (GET)", http.StatusMethodNotAllowed)
		return
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "moodlesim: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(append(b, '\n'))
	}
}

// inspectPath returns the inspection resource named by path ("state",
// "calls", ...) and whether path is an inspection path at all. It is
// recognised at the server root and under WWWRoot's path.
func (s *Server) inspectPath(path string) (string, bool) {
	if s.basePath != "" && strings.HasPrefix(path, s.basePath+InspectPrefix) {
		path = strings.TrimPrefix(path, s.basePath)
	}
	if !strings.HasPrefix(path, InspectPrefix) {
		return "", false
	}
	return strings.TrimPrefix(path, InspectPrefix), true
}

func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
