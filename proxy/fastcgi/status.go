package fastcgi

import (
	"encoding/json"
	"fmt"
)

// PoolStatus is what upmedic reads from PHP-FPM's status page
// (pm.status_path, asked for with the query "json"). Fields PHP-FPM did not
// send are zero; fields upmedic does not know are ignored.
type PoolStatus struct {
	Pool           string `json:"pool"`
	ProcessManager string `json:"process manager"`
	// AcceptedConn counts requests the pool accepted since it started.
	AcceptedConn int64 `json:"accepted conn"`
	// ListenQueue is how many connections wait in the listen backlog for a
	// free worker now; MaxListenQueue the most since start; ListenQueueLen
	// the backlog's size.
	ListenQueue    int `json:"listen queue"`
	MaxListenQueue int `json:"max listen queue"`
	ListenQueueLen int `json:"listen queue len"`
	// IdleProcesses, ActiveProcesses and TotalProcesses count the pool's
	// workers now; with pm = static TotalProcesses is pm.max_children.
	IdleProcesses      int `json:"idle processes"`
	ActiveProcesses    int `json:"active processes"`
	TotalProcesses     int `json:"total processes"`
	MaxActiveProcesses int `json:"max active processes"`
	// MaxChildrenReached counts the times the pool wanted to start a worker
	// beyond pm.max_children (dynamic and ondemand pools only).
	MaxChildrenReached int   `json:"max children reached"`
	SlowRequests       int64 `json:"slow requests"`
}

// ParsePoolStatus decodes PHP-FPM's JSON status page body.
func ParsePoolStatus(body []byte) (PoolStatus, error) {
	var s PoolStatus
	if err := json.Unmarshal(body, &s); err != nil {
		return PoolStatus{}, fmt.Errorf("fastcgi: PHP-FPM status page: %w", err)
	}
	return s, nil
}
