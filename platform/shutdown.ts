import type { Logger } from './log.ts';

/** How long a clean stop may take before the process leaves anyway (unacknowledged work is redelivered). */
const graceMs = (): number => Number(process.env.VIRTPLANE_SHUTDOWN_GRACE_MS ?? 10_000);

/**
 * Runs the closers in reverse order of registration on SIGTERM/SIGINT, once. Services register the
 * consumer stop first and the connection drain last, so nothing unfinished is acknowledged. A stop
 * that does not finish within the grace period ends the process anyway, as a supervisor would:
 * nothing unfinished was acknowledged, so leaving costs only a redelivery.
 */
export const onShutdown = (log: Logger, ...closers: Array<() => Promise<void>>): (() => Promise<void>) => {
  let closing: Promise<void> | null = null;
  const close = () => {
    closing ??= (async () => {
      for (const c of [...closers].reverse()) {
        try {
          await c();
        } catch (e) {
          log.warn('error while shutting down', { error: String(e) });
        }
      }
    })();
    return closing;
  };
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.once(sig, () => {
      log.info(`received ${sig}, shutting down`);
      setTimeout(() => {
        log.warn('shutdown did not finish within its grace period; exiting', { graceMs: graceMs() });
        process.exit(1);
      }, graceMs()).unref();
      void close().then(() => process.exit(0));
    });
  }
  return close;
};
