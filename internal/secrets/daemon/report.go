package daemon

import (
	"time"

	"go.uber.org/zap"

	"github.com/veraticus/egoengine/internal/health/status"
)

// saveInfo writes the daemon's report on itself (daemon.json): its pid,
// home and config, a broken config's error, and when each secret is next
// refreshed and why. status and metadata read it; the daemon writes it to a
// file of its own so that it never waits on a pass for the state file.
func (s *server) saveInfo() {
	next, why := map[string]time.Time{}, map[string]status.Trigger{}
	for _, sec := range s.cur.Config.Secrets {
		next[sec.Name], why[sec.Name] = s.plan.NextRefresh(sec.Name)
	}
	s.info.Next, s.info.Why = next, why
	s.info.HoldUntil = s.plan.HoldUntil()
	if err := status.SaveDaemon(s.StateDir, &s.info); err != nil {
		s.Log.Warn("cannot save the daemon's state", zap.Error(err))
	}
}
