package failoverconnector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/connector"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pipeline"
)

// NewFactory returns the factory of the "failover" connector (logs to logs, traces to traces).
func NewFactory() connector.Factory {
	return connector.NewFactory(
		component.MustNewType("failover"),
		func() component.Config { return createDefaultConfig() },
		connector.WithLogsToLogs(createLogs, component.StabilityLevelDevelopment),
		connector.WithTracesToTraces(createTraces, component.StabilityLevelDevelopment),
	)
}

func pickLevels[C any](cfg *Config, pick func(...pipeline.ID) (C, error)) ([]C, []string, error) {
	consumers := make([]C, 0, len(cfg.PriorityLevels))
	names := make([]string, 0, len(cfg.PriorityLevels))
	for i, ids := range cfg.PriorityLevels {
		c, err := pick(ids...)
		if err != nil {
			return nil, nil, fmt.Errorf("priority_levels[%d]: %w", i, err)
		}
		consumers = append(consumers, c)
		names = append(names, fmt.Sprint(ids))
	}
	return consumers, names, nil
}

type logsConnector struct {
	component.StartFunc
	component.ShutdownFunc
	l *levels[consumer.Logs, plog.Logs]
}

func (c *logsConnector) Capabilities() consumer.Capabilities {
	return consumer.Capabilities{MutatesData: false}
}

func (c *logsConnector) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	return c.l.consume(ctx, ld)
}

func createLogs(_ context.Context, set connector.Settings, cfg component.Config, next consumer.Logs) (connector.Logs, error) {
	router, ok := next.(connector.LogsRouterAndConsumer)
	if !ok {
		return nil, errors.New("failover: the connector needs its output pipelines (priority_levels)")
	}
	conf := cfg.(*Config)
	consumers, names, err := pickLevels(conf, router.Consumer)
	if err != nil {
		return nil, err
	}
	return &logsConnector{l: &levels[consumer.Logs, plog.Logs]{
		consumers: consumers, names: names, retry: conf.RetryInterval, logger: set.Logger, now: time.Now,
		send: func(c consumer.Logs, ctx context.Context, ld plog.Logs) error { return c.ConsumeLogs(ctx, ld) },
	}}, nil
}

type tracesConnector struct {
	component.StartFunc
	component.ShutdownFunc
	l *levels[consumer.Traces, ptrace.Traces]
}

func (c *tracesConnector) Capabilities() consumer.Capabilities {
	return consumer.Capabilities{MutatesData: false}
}

func (c *tracesConnector) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	return c.l.consume(ctx, td)
}

func createTraces(_ context.Context, set connector.Settings, cfg component.Config, next consumer.Traces) (connector.Traces, error) {
	router, ok := next.(connector.TracesRouterAndConsumer)
	if !ok {
		return nil, errors.New("failover: the connector needs its output pipelines (priority_levels)")
	}
	conf := cfg.(*Config)
	consumers, names, err := pickLevels(conf, router.Consumer)
	if err != nil {
		return nil, err
	}
	return &tracesConnector{l: &levels[consumer.Traces, ptrace.Traces]{
		consumers: consumers, names: names, retry: conf.RetryInterval, logger: set.Logger, now: time.Now,
		send: func(c consumer.Traces, ctx context.Context, td ptrace.Traces) error { return c.ConsumeTraces(ctx, td) },
	}}, nil
}
