package cache

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

var (
	// errBreakerOpen: the call was skipped, Redis having failed repeatedly.
	errBreakerOpen = errors.New("redis skipped: circuit breaker open")
	// errExcluded marks an outcome that says nothing about Redis (the
	// caller gave up); the breaker neither counts it as success nor failure.
	errExcluded = errors.New("excluded from the breaker's counts")
)

// breaker skips Redis after repeated failures: sony/gobreaker's two-step
// breaker, opened by consecutive failures, half-open after the back-off
// with a single probe call.
type breaker struct {
	cb *gobreaker.TwoStepCircuitBreaker[struct{}]
}

func newBreaker(failures int, backoff time.Duration, gauge prometheus.Gauge, log *slog.Logger) *breaker {
	gauge.Set(0)
	return &breaker{cb: gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "redis",
		MaxRequests: 1,
		Timeout:     backoff,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= uint32(failures) },
		IsExcluded:  func(err error) bool { return errors.Is(err, errExcluded) },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			if to == gobreaker.StateClosed {
				gauge.Set(0)
			} else {
				gauge.Set(1)
			}
			level := slog.LevelWarn
			if to == gobreaker.StateClosed {
				level = slog.LevelInfo
			}
			log.LogAttrs(context.Background(), level, "redis circuit breaker",
				slog.String("from", from.String()), slog.String("to", to.String()), slog.Duration("backoff", backoff))
		},
	})}
}

// allow reports whether a call may go to Redis; done must then be called
// with its outcome.
func (b *breaker) allow() (done func(error), ok bool) {
	done, err := b.cb.Allow()
	if err != nil {
		return nil, false
	}
	return done, true
}

// open reports a breaker that is not closed.
func (b *breaker) open() bool { return b.cb.State() != gobreaker.StateClosed }
