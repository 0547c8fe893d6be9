package main

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// reloadGauges say whether the running configuration is the one on disk,
// which a counter cannot: after a failed reload tokengate_config_reloads_total
// only grows, while tokengate_config_last_reload_successful stays 0 until a
// reload succeeds (the same pattern as Prometheus' own reload metrics).
type reloadGauges struct {
	successful prometheus.Gauge
	timestamp  prometheus.Gauge
}

func newReloadGauges(f promauto.Factory) *reloadGauges {
	g := &reloadGauges{
		successful: f.NewGauge(prometheus.GaugeOpts{
			Name: "tokengate_config_last_reload_successful",
			Help: "1 when the last configuration load (start or reload) succeeded, 0 when the last reload failed and an older configuration is running.",
		}),
		timestamp: f.NewGauge(prometheus.GaugeOpts{
			Name: "tokengate_config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful configuration load (start or reload).",
		}),
	}
	// The process starts only with a valid configuration.
	g.successful.Set(1)
	g.timestamp.SetToCurrentTime()
	return g
}

// reloaded records the outcome of one reload.
func (p *process) reloaded(ok bool) {
	if !ok {
		p.reloads.WithLabelValues("error").Inc()
		p.reloadState.successful.Set(0)
		return
	}
	p.reloads.WithLabelValues("ok").Inc()
	p.reloadState.successful.Set(1)
	p.reloadState.timestamp.SetToCurrentTime()
}
