package failoverconnector

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.uber.org/zap"
)

// levels is the failover state shared by the logs and traces connectors: which level the
// last batch went to and since when. Calls are concurrent (the sender's queue has several
// consumers); only the state is locked, never a call.
type levels[C any, D any] struct {
	consumers []C
	names     []string
	send      func(C, context.Context, D) error
	retry     time.Duration
	logger    *zap.Logger
	now       func() time.Time

	mu      sync.Mutex
	current int       // the level that took the last batch
	since   time.Time // when the current lower level was chosen or last confirmed by a probe
}

// start returns the level a batch tries first: the current one, or the highest when the
// current one is lower and retry_interval has passed since it was chosen (a probe).
func (l *levels[C, D]) start() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.current > 0 && l.now().Sub(l.since) >= l.retry {
		l.since = l.now() // one probe per interval, not one per concurrent batch
		return 0
	}
	return l.current
}

// settle records the level that took a batch. Moving down (or a probe that ended below the
// highest level) starts a new retry_interval.
func (l *levels[C, D]) settle(level int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if level > 0 && level != l.current {
		l.since = l.now()
	}
	if level != l.current {
		if level == 0 {
			l.logger.Info("failover: back on the highest priority level", zap.String("pipelines", l.names[0]))
		} else {
			l.logger.Warn("failover: sending to a lower priority level",
				zap.Int("level", level), zap.String("pipelines", l.names[level]))
		}
		l.current = level
	}
}

// consume sends data to the first level that takes it, trying the levels from start() down
// and then the ones above it. The error (every level refused) is permanent only when every
// level's error was permanent, so that one level's rejection never makes the sender drop
// data that another level might still take.
func (l *levels[C, D]) consume(ctx context.Context, data D) error {
	first := l.start()
	n := len(l.consumers)
	var msgs []string
	permanent := true
	for k := 0; k < n; k++ {
		i := (first + k) % n
		err := l.send(l.consumers[i], ctx, data)
		if err == nil {
			l.settle(i)
			return nil
		}
		msgs = append(msgs, fmt.Sprintf("level %d (%s): %v", i, l.names[i], err))
		permanent = permanent && consumererror.IsPermanent(err)
		if ctx.Err() != nil {
			permanent = false
			break
		}
	}
	err := errors.New("failover: every priority level refused the data: " + strings.Join(msgs, "; "))
	if permanent {
		return consumererror.NewPermanent(err)
	}
	return err
}
