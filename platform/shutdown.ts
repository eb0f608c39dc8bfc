import type { Logger } from './log.ts';

/**
 * Runs the closers in reverse order of registration on SIGTERM/SIGINT, once. Services register the
 * consumer stop first and the connection drain last, so nothing unfinished is acknowledged.
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
      void close().then(() => process.exit(0));
    });
  }
  return close;
};
