import { trace } from '@opentelemetry/api';
import { BasicTracerProvider, ConsoleSpanExporter, InMemorySpanExporter, SimpleSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { installPropagator, startRecording, tracesExported } from './telemetry.ts';

/** The OpenTelemetry SDK, apart from platform/telemetry.ts so that propagating alone does not load it. */

export const memoryExporter = new InMemorySpanExporter();

export const initTelemetry = (opts: { inMemory?: boolean } = {}): void => {
  installPropagator();
  const spanProcessors: SpanProcessor[] = [];
  if (tracesExported()) spanProcessors.push(new SimpleSpanProcessor(new ConsoleSpanExporter()));
  if (opts.inMemory) spanProcessors.push(new SimpleSpanProcessor(memoryExporter));
  if (spanProcessors.length === 0 || !startRecording()) return;
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors }));
};
