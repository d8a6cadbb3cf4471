package failoverconnector

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.uber.org/zap"
)

// fake levels: up[i] says whether level i takes data; got[i] counts what it took.
type fake struct {
	up  []bool
	err []error
	got []int
}

func newLevels(f *fake, clock *time.Time) *levels[int, string] {
	idx := make([]int, len(f.up))
	names := make([]string, len(f.up))
	for i := range idx {
		idx[i] = i
		names[i] = "level"
	}
	return &levels[int, string]{
		consumers: idx, names: names, retry: 10 * time.Second, logger: zap.NewNop(),
		now: func() time.Time { return *clock },
		send: func(i int, _ context.Context, _ string) error {
			if f.up[i] {
				f.got[i]++
				return nil
			}
			if f.err != nil && f.err[i] != nil {
				return f.err[i]
			}
			return errors.New("down")
		},
	}
}

func TestFailoverAndBack(t *testing.T) {
	clock := time.Unix(1000, 0)
	f := &fake{up: []bool{true, true, true}, got: make([]int, 3)}
	l := newLevels(f, &clock)
	ctx := context.Background()

	if err := l.consume(ctx, "a"); err != nil || f.got[0] != 1 {
		t.Fatalf("balanced level first: %v %v", err, f.got)
	}
	f.up[0], f.up[1] = false, false // the balanced level and gateway 1 fail
	if err := l.consume(ctx, "b"); err != nil || f.got[2] != 1 {
		t.Fatalf("fails over to level 2: %v %v", err, f.got)
	}
	f.up[0] = true // back, but within retry_interval the connector stays below
	clock = clock.Add(5 * time.Second)
	if err := l.consume(ctx, "c"); err != nil || f.got[2] != 2 || f.got[0] != 1 {
		t.Fatalf("stays on level 2 until retry_interval: %v %v", err, f.got)
	}
	clock = clock.Add(6 * time.Second)
	if err := l.consume(ctx, "d"); err != nil || f.got[0] != 2 {
		t.Fatalf("probe returns to level 0: %v %v", err, f.got)
	}
	if err := l.consume(ctx, "e"); err != nil || f.got[0] != 3 {
		t.Fatalf("stays on level 0: %v %v", err, f.got)
	}
}

func TestFailedProbeWaitsAnotherInterval(t *testing.T) {
	clock := time.Unix(1000, 0)
	f := &fake{up: []bool{false, true}, got: make([]int, 2)}
	l := newLevels(f, &clock)
	ctx := context.Background()
	_ = l.consume(ctx, "a")
	clock = clock.Add(11 * time.Second)
	_ = l.consume(ctx, "b") // probe of level 0 fails, level 1 takes it
	if l.start() != 1 {
		t.Fatal("a failed probe is not repeated before the next interval")
	}
	if f.got[1] != 2 {
		t.Fatalf("level 1 took both: %v", f.got)
	}
}

func TestEveryLevelDown(t *testing.T) {
	clock := time.Unix(1000, 0)
	f := &fake{up: []bool{false, false}, got: make([]int, 2)}
	l := newLevels(f, &clock)
	err := l.consume(context.Background(), "a")
	if err == nil || consumererror.IsPermanent(err) {
		t.Fatalf("a retryable error when every level is down: %v", err)
	}
	// one permanent refusal among retryable ones stays retryable
	f.err = []error{consumererror.NewPermanent(errors.New("bad")), errors.New("down")}
	if err := l.consume(context.Background(), "a"); consumererror.IsPermanent(err) {
		t.Fatalf("not permanent while one level may still take it: %v", err)
	}
	f.err = []error{consumererror.NewPermanent(errors.New("bad")), consumererror.NewPermanent(errors.New("bad"))}
	if err := l.consume(context.Background(), "a"); !consumererror.IsPermanent(err) {
		t.Fatalf("permanent when every level rejects the data: %v", err)
	}
	// after a total failure the highest level that works takes the next batch
	f.err = nil
	f.up[0] = true
	if err := l.consume(context.Background(), "b"); err != nil || f.got[0] != 1 {
		t.Fatalf("recovers: %v %v", err, f.got)
	}
}
