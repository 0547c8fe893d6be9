package server

import (
	"context"
	"errors"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/tokengate/tokengate/exchange"
	"github.com/tokengate/tokengate/gateway"
	"github.com/tokengate/tokengate/internal/telemetry"
)

// The spans tokengate makes itself: one per step of the decision, as
// decorators around the gateway's interfaces, so the gateway's logic holds
// no span code. Attributes are bounded and never a token or a subject: the
// audience and scopes come from the configuration, the reason is the
// rejection's `reason` label value.
const (
	spanVerify = "verify token"
	spanExch   = "exchange token"
	spanTxn    = "mint txn-token"

	attrAudience = attribute.Key("tokengate.audience")
	attrReason   = attribute.Key("tokengate.reason")
)

// tracedVerifier is a gateway.Verifier with an INTERNAL span per call.
type tracedVerifier struct {
	next   gateway.Verifier
	tracer trace.Tracer
}

func (v tracedVerifier) Verify(ctx context.Context, raw, audience string) (*exchange.Token, error) {
	if !sampled(ctx) {
		return v.next.Verify(ctx, raw, audience)
	}
	ctx, span := v.tracer.Start(ctx, spanVerify, trace.WithAttributes(attrAudience.String(audience)))
	defer span.End()
	t, err := v.next.Verify(ctx, raw, audience)
	endWith(span, err)
	return t, err
}

// tracedExchanger is a gateway.Exchanger with an INTERNAL span per
// exchange; an STS or Redis call made for it is a child span.
type tracedExchanger struct {
	next   gateway.Exchanger
	tracer trace.Tracer
}

func (e tracedExchanger) Exchange(ctx context.Context, req exchange.Request) (*exchange.Result, error) {
	if !sampled(ctx) {
		return e.next.Exchange(ctx, req)
	}
	ctx, span := e.tracer.Start(ctx, spanExch, trace.WithAttributes(attrAudience.String(req.Audience)))
	defer span.End()
	res, err := e.next.Exchange(ctx, req)
	endWith(span, err)
	return res, err
}

func (e tracedExchanger) Invalidate(ctx context.Context, req exchange.Request) {
	e.next.Invalidate(ctx, req)
}

// tracedTxnMinter is a gateway.TxnMinter with an INTERNAL span per token.
type tracedTxnMinter struct {
	next   gateway.TxnMinter
	tracer trace.Tracer
}

func (m tracedTxnMinter) MintTxnToken(ctx context.Context, req exchange.TxnRequest) (*exchange.TxnResult, error) {
	if !sampled(ctx) {
		return m.next.MintTxnToken(ctx, req)
	}
	ctx, span := m.tracer.Start(ctx, spanTxn)
	defer span.End()
	res, err := m.next.MintTxnToken(ctx, req)
	endWith(span, err)
	return res, err
}

// sampled reports whether the request's trace is recorded: the spans of a
// request that is not are not made at all (a non-recording span still costs).
func sampled(ctx context.Context) bool { return trace.SpanContextFromContext(ctx).IsSampled() }

// endWith marks a failed step. Only the reason of a refusal is recorded,
// never the error's text: it may quote a claim. A refusal is the step's
// answer (as a 4xx is not an error of the server span), an outage its error.
func endWith(span trace.Span, err error) {
	if err == nil {
		return
	}
	if re, ok := errors.AsType[*exchange.RejectError](err); ok {
		span.SetAttributes(attrReason.String(re.Reason))
		return
	}
	span.SetStatus(codes.Error, "unavailable")
}

// traced wraps the gateway's dependencies in spans when tracing is on.
func traced(tel *telemetry.Provider, v gateway.Verifier, e gateway.Exchanger, m gateway.TxnMinter) (gateway.Verifier, gateway.Exchanger, gateway.TxnMinter) {
	if !tel.Enabled() {
		return v, e, m
	}
	tr := tel.Tracer()
	v, e = tracedVerifier{next: v, tracer: tr}, tracedExchanger{next: e, tracer: tr}
	if m != nil {
		m = tracedTxnMinter{next: m, tracer: tr}
	}
	return v, e, m
}

// traceRedis adds a CLIENT span per Redis command: db.system=redis and the
// command's name only, never its keys or values (no db.statement).
func traceRedis(tel *telemetry.Provider, client redis.UniversalClient) error {
	if !tel.Enabled() {
		return nil
	}
	return redisotel.InstrumentTracing(client,
		redisotel.WithTracerProvider(tel.TracerProvider()),
		redisotel.WithDBStatement(false),
		redisotel.WithCallerEnabled(false),
	)
}
