// Package failoverconnector is hapa-telemetry's own failover connector for the agent
// collector (collector/agent.yaml): it hands each batch to the first priority level of
// pipelines that takes it, and returns an error (so that the sender keeps the batch and
// retries) only when every level refused it.
//
// Why our own: the upstream contrib failover connector is not served by the Go module proxy
// reachable here at any release (docs/collector.md). The configuration keys follow the
// upstream ones (priority_levels, retry_interval), so the upstream component can replace
// this one with a manifest change once it is served at the agent's release.
package failoverconnector

import (
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/pipeline"
)

// Config of one failover connector (one signal: its pipelines are of that signal).
type Config struct {
	// PriorityLevels: the pipelines of each level, highest priority first. A batch goes to
	// every pipeline of the first level that takes it (a level fails if one of its
	// pipelines returns an error).
	PriorityLevels [][]pipeline.ID `mapstructure:"priority_levels"`
	// RetryInterval: how long to stay on a lower level before the next batch tries the
	// highest level again (a probe; on success the connector stays there).
	RetryInterval time.Duration `mapstructure:"retry_interval"`
}

func createDefaultConfig() *Config {
	return &Config{RetryInterval: 10 * time.Second}
}

// Validate checks that there is at least one level and that no level is empty.
func (c *Config) Validate() error {
	if len(c.PriorityLevels) == 0 {
		return errors.New("priority_levels: at least one level of pipelines is needed")
	}
	for i, level := range c.PriorityLevels {
		if len(level) == 0 {
			return fmt.Errorf("priority_levels[%d]: empty level", i)
		}
	}
	if c.RetryInterval <= 0 {
		return errors.New("retry_interval must be positive")
	}
	return nil
}
