package exchange

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// errCircuitOpen: the STS failed repeatedly and is not asked until the
// back-off ends, so a dead STS fails requests at once instead of making each
// wait the full timeout.
var errCircuitOpen = errors.New("circuit open: the STS failed repeatedly")

// Breaker defaults.
const (
	defaultBreakerThreshold   = 5
	defaultBreakerCooldown    = time.Second
	defaultBreakerMaxCooldown = 30 * time.Second
)

type breakerState int

const (
	breakerClosed   breakerState = iota // every call goes through
	breakerOpen                         // no call until openUntil
	breakerHalfOpen                     // one probe call decides
)

func (s breakerState) String() string {
	switch s {
	case breakerOpen:
		return "open"
	case breakerHalfOpen:
		return "half-open"
	}
	return "closed"
}

// breaker is a circuit breaker over STS calls. threshold consecutive
// transient failures open it for cooldown; then one probe call is let
// through (half-open): its success closes the breaker, its failure opens it
// again for twice as long, up to maxCooldown. Answers that are not
// transient failures (a 4xx) prove the STS alive and count as successes.
type breaker struct {
	now         func() time.Time
	threshold   int
	cooldown    time.Duration
	maxCooldown time.Duration

	mu        sync.Mutex
	state     breakerState
	failures  int           // consecutive, while closed
	backoff   time.Duration // the current open period
	openUntil time.Time
	probing   bool // a half-open probe is under way

	// onChange, when set, is told of every state change (logging).
	onChange func(from, to breakerState, backoff time.Duration)
}

func newBreaker(now func() time.Time, threshold int, cooldown, maxCooldown time.Duration) *breaker {
	if threshold <= 0 {
		threshold = defaultBreakerThreshold
	}
	if cooldown <= 0 {
		cooldown = defaultBreakerCooldown
	}
	if maxCooldown < cooldown {
		maxCooldown = max(cooldown, defaultBreakerMaxCooldown)
	}
	return &breaker{now: now, threshold: threshold, cooldown: cooldown, maxCooldown: maxCooldown, backoff: cooldown}
}

// breakerTicket is one admitted call; done records its outcome exactly once.
type breakerTicket struct {
	b     *breaker
	probe bool
}

// allow admits a call, or returns an error wrapping errCircuitOpen that says
// when the STS will be tried again.
func (b *breaker) allow() (*breakerTicket, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case breakerClosed:
		return &breakerTicket{b: b}, nil
	case breakerOpen:
		now := b.now()
		if now.Before(b.openUntil) {
			return nil, fmt.Errorf("%w; next try in %s", errCircuitOpen, b.openUntil.Sub(now).Round(time.Millisecond))
		}
		b.set(breakerHalfOpen)
		fallthrough
	default: // half-open
		if b.probing {
			return nil, fmt.Errorf("%w; a probe call is under way", errCircuitOpen)
		}
		b.probing = true
		return &breakerTicket{b: b, probe: true}, nil
	}
}

// breakerResult is how an admitted call ended.
type breakerResult int

const (
	breakerSuccess breakerResult = iota // the STS answered (any non-transient answer)
	breakerFailure                      // a transient failure: no answer, 5xx, 429
	breakerUnknown                      // the caller gave up: says nothing of the STS
)

func (t *breakerTicket) done(r breakerResult) {
	b := t.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if t.probe {
		b.probing = false
	}
	switch r {
	case breakerSuccess:
		b.failures = 0
		if t.probe || b.state != breakerClosed {
			b.backoff = b.cooldown
			b.set(breakerClosed)
		}
	case breakerFailure:
		switch {
		case t.probe:
			b.backoff = min(2*b.backoff, b.maxCooldown)
			b.open()
		case b.state == breakerClosed:
			b.failures++
			if b.failures >= b.threshold {
				b.open()
			}
		}
	}
}

func (b *breaker) open() {
	b.failures = 0
	b.openUntil = b.now().Add(b.backoff)
	b.set(breakerOpen)
}

func (b *breaker) set(s breakerState) {
	if s == b.state {
		return
	}
	from := b.state
	b.state = s
	if b.onChange != nil {
		b.onChange(from, s, b.backoff)
	}
}

// openRemaining reports whether the breaker refuses calls now, and for how
// much longer: an open breaker whose period is over admits the next call as
// a probe, so it no longer counts as degraded even before that call comes.
func (b *breaker) openRemaining() (time.Duration, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state != breakerOpen {
		return 0, false
	}
	left := b.openUntil.Sub(b.now())
	return left, left > 0
}

// current returns the state, for readiness and tests.
func (b *breaker) current() breakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}
