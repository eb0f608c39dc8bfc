import { context, propagation, trace, type Context, type Span } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import type { MsgHdrs } from '@nats-io/transport-node';

/**
 * Tracing across NATS. There is no official nats.js instrumentation, so the W3C `traceparent` travels
 * in message headers: the client opens a span per command, the services continue it, the events
 * record it, and tasks carry it to the host that does the work.
 *
 * Spans are exported to the console with OTEL_TRACES_EXPORTER=console; otherwise they are only
 * propagated (ids, no export), which costs next to nothing.
 */

let installed = false;
/** Spans are made only where they go somewhere; otherwise an incoming trace is passed through as is. */
let recording = false;

/**
 * Whether spans are exported (OTEL_TRACES_EXPORTER=console). Only then is the OpenTelemetry SDK
 * loaded (platform/tracing.ts): a process that only propagates, the CLI above all, never pays for it.
 */
export const tracesExported = (): boolean => process.env.OTEL_TRACES_EXPORTER === 'console';

/** Carries the W3C `traceparent` in and out of messages; what every process needs, spans or not. */
export const installPropagator = (): void => {
  if (!installed) propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  installed = true;
};

/** Called once a tracer provider with a span processor is installed: from then on spans are made. */
export const startRecording = (): boolean => {
  if (recording) return false;
  recording = true;
  return true;
};

export const tracer = () => trace.getTracer('virtplane');

const getter = {
  keys: (h: MsgHdrs | undefined) => (h ? [...h.keys()] : []),
  get: (h: MsgHdrs | undefined, key: string) => h?.get(key) || undefined,
};

/** The context a message's headers carry, or the active one. */
export const contextFrom = (h: MsgHdrs | undefined): Context => propagation.extract(context.active(), h, getter);

/** The context a bare traceparent (stored on an event or a task) stands for. */
export const contextFromTraceparent = (traceparent: string | undefined): Context =>
  traceparent ? propagation.extract(context.active(), { traceparent }) : context.active();

/** The traceparent of a span, to put on a message or an event. */
export const traceparentOf = (span: Span): string | undefined => {
  const carrier: Record<string, string> = {};
  propagation.inject(trace.setSpan(context.active(), span), carrier);
  return carrier.traceparent;
};

/** Runs `fn` in a span that is a child of `parent`, ending it (with the error, if any) afterwards. */
export const inSpan = async <T>(name: string, parent: Context, fn: (span: Span) => Promise<T>): Promise<T> => {
  if (!recording) {
    // No exporter: no span of our own, but whatever trace came in goes on out unchanged.
    const passThrough = trace.getSpan(parent) ?? trace.wrapSpanContext({ traceId: '', spanId: '', traceFlags: 0 });
    return fn(passThrough);
  }
  const span = tracer().startSpan(name, undefined, parent);
  try {
    return await context.with(trace.setSpan(parent, span), () => fn(span));
  } catch (e) {
    span.recordException(e as Error);
    span.setStatus({ code: 2, message: (e as Error).message });
    throw e;
  } finally {
    span.end();
  }
};
