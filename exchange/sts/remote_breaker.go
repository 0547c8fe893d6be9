package sts

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/tokengate/tokengate/config"
)

// errCircuitOpen: the STS failed repeatedly and is not asked until the
// back-off ends, so a dead STS fails requests at once instead of making each
// wait the full timeout.
var errCircuitOpen = errors.New("circuit open: the STS failed repeatedly")

// Outcomes reported to the breaker besides success (a nil error).
var (
	// errBreakerFailure: a transient failure (no answer, 5xx, 429).
	errBreakerFailure = errors.New("transient sts failure")
	// errBreakerExcluded: the caller gave up; says nothing of the STS, so
	// it counts neither as success nor as failure.
	errBreakerExcluded = errors.New("excluded from the breaker's counts")
)

// Breaker defaults.
const (
	defaultBreakerThreshold   = config.DefaultBreakerThreshold
	defaultBreakerCooldown    = config.DefaultBreakerCooldown
	defaultBreakerMaxCooldown = config.DefaultBreakerMaxCooldown
)

// breakerResult is how an admitted call ended.
type breakerResult int

const (
	breakerSuccess breakerResult = iota // the STS answered (any non-transient answer)
	breakerFailure                      // a transient failure: no answer, 5xx, 429
	breakerUnknown                      // the caller gave up: says nothing of the STS
)

// stsBreaker is the circuit breaker over STS calls: sony/gobreaker's
// two-step breaker, as cache/breaker.go uses for Redis. threshold
// consecutive transient failures open it for cooldown; then one probe call
// is let through (half-open): its success closes the breaker, its failure
// opens it again for twice as long, up to maxCooldown (gobreaker's open
// period is fixed, so the longer periods are a gate in front of it).
// Answers that are not transient failures (any 4xx: a rejected token,
// access_denied, a configuration error) prove the STS alive and count as
// successes. Time is time.Now, as gobreaker keeps it.
type stsBreaker struct {
	cb          *gobreaker.TwoStepCircuitBreaker[struct{}]
	cooldown    time.Duration
	maxCooldown time.Duration

	mu       sync.Mutex
	backoff  time.Duration // the current open period
	openedAt time.Time     // when it last opened
}

// newSTSBreaker builds the breaker; onChange, when set, is told of every
// state change and the open period (logging).
func newSTSBreaker(threshold int, cooldown, maxCooldown time.Duration, onChange func(from, to gobreaker.State, backoff time.Duration)) *stsBreaker {
	if threshold <= 0 {
		threshold = defaultBreakerThreshold
	}
	if cooldown <= 0 {
		cooldown = defaultBreakerCooldown
	}
	if maxCooldown < cooldown {
		maxCooldown = max(cooldown, defaultBreakerMaxCooldown)
	}
	b := &stsBreaker{cooldown: cooldown, maxCooldown: maxCooldown, backoff: cooldown}
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "sts",
		MaxRequests: 1,
		Timeout:     cooldown,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= uint32(threshold) },
		IsExcluded:  func(err error) bool { return errors.Is(err, errBreakerExcluded) },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			backoff := b.changed(from, to)
			if onChange != nil {
				onChange(from, to, backoff)
			}
		},
	})
	return b
}

// changed tracks the open period: doubled by a failed probe, back to
// cooldown once closed.
func (b *stsBreaker) changed(from, to gobreaker.State) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch to {
	case gobreaker.StateOpen:
		if from == gobreaker.StateHalfOpen {
			b.backoff = min(2*b.backoff, b.maxCooldown)
		}
		b.openedAt = time.Now()
	case gobreaker.StateClosed:
		b.backoff = b.cooldown
	}
	return b.backoff
}

// allow admits a call, or returns an error wrapping errCircuitOpen that says
// when the STS will be tried again. done must then be called once with the
// call's outcome.
func (b *stsBreaker) allow() (done func(breakerResult), err error) {
	if left, open := b.openRemaining(); open {
		return nil, fmt.Errorf("%w; next try in %s", errCircuitOpen, left.Round(time.Millisecond))
	}
	d, err := b.cb.Allow()
	switch {
	case errors.Is(err, gobreaker.ErrTooManyRequests):
		return nil, fmt.Errorf("%w; a probe call is under way", errCircuitOpen)
	case err != nil:
		return nil, fmt.Errorf("%w; next try soon", errCircuitOpen)
	}
	return func(r breakerResult) {
		switch r {
		case breakerSuccess:
			d(nil)
		case breakerFailure:
			d(errBreakerFailure)
		default:
			d(errBreakerExcluded)
		}
	}, nil
}

// openRemaining reports whether the breaker refuses calls now, and for how
// much longer: once the open period is over the next call is admitted as a
// probe, so it no longer counts as degraded even before that call comes.
func (b *stsBreaker) openRemaining() (time.Duration, bool) {
	if b.cb.State() == gobreaker.StateClosed {
		return 0, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	left := time.Until(b.openedAt.Add(b.backoff))
	return left, left > 0
}

// state is the breaker's state, for tests.
func (b *stsBreaker) state() gobreaker.State { return b.cb.State() }
