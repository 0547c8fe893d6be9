package main

import (
	"context"
	"fmt"
	"log/slog"
)

// redisLog sends go-redis's own messages (dial failures, pub/sub
// reconnections) to the process logger instead of its stderr logger.
type redisLog struct{ l *slog.Logger }

func (r redisLog) Printf(ctx context.Context, format string, v ...any) {
	r.l.LogAttrs(ctx, slog.LevelWarn, fmt.Sprintf(format, v...), slog.String("component", "go-redis"))
}
