import { ConfigError } from './config.ts';
import type { Logger } from './log.ts';

/**
 * How a process tells whoever started it that it is ready, or why it is not: a message on the IPC
 * channel when it has one (the embedded default, tests, `virtplane up`), never a log line, so any log
 * level works. A process started by hand has no channel and says so in its log only.
 */
export type Readiness = { type: 'ready'; detail?: Record<string, unknown> } | { type: 'failed'; reason: string; usage: boolean };

const send = (m: Readiness): Promise<void> =>
  new Promise((resolve) => {
    if (!process.send || !process.connected) return resolve();
    process.send(m, undefined, {}, () => resolve());
  });

export const announceReady = async (log: Logger, msg: string, detail?: Record<string, unknown>): Promise<void> => {
  log.info(msg, detail);
  await send({ type: 'ready', ...(detail ? { detail } : {}) });
};

/** The one line that says why a failure happened: a setting's own message, or the error's, never a stack. */
export const reasonOf = (e: unknown): string => {
  if (e instanceof Error) {
    const cause = (e as { cause?: unknown }).cause;
    return cause instanceof Error && cause.message && !e.message.includes(cause.message) ? `${e.message}: ${cause.message}` : e.message;
  }
  return String(e);
};

/**
 * A service that fails, at start-up or later, leaves with one line and an exit code (2 for a bad
 * setting, 1 otherwise) rather than a stack trace; the stack goes in the log line's fields for the
 * errors nobody foresaw. Whoever started it hears why over the IPC channel.
 */
export const exitOnFailure = (log: Logger, name: string): void => {
  let failing = false;
  const fail = (e: unknown) => {
    if (failing) return;
    failing = true;
    const usage = e instanceof ConfigError;
    const reason = `${name}: ${reasonOf(e)}`;
    log.error(reason, usage ? {} : { stack: e instanceof Error ? e.stack : undefined });
    void send({ type: 'failed', reason, usage }).finally(() => process.exit(usage ? 2 : 1));
  };
  process.on('uncaughtException', fail);
  process.on('unhandledRejection', fail);
  // A supervisor that went away (killed with -9) leaves nobody to stop this process: stop as on SIGTERM.
  if (process.send) {
    process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'));
  }
  // The channel alone never keeps a process alive.
  process.channel?.unref();
};
