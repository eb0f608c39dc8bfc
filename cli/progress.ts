import cliProgress from 'cli-progress';

/**
 * Shows a bar against the operation's deadline while a long operation runs, on a terminal only:
 * scripts and --json output get nothing on stderr.
 */
export const withProgress = async <T>(label: string, deadlineMs: number, enabled: boolean, work: () => Promise<T>): Promise<T> => {
  if (!enabled || !process.stderr.isTTY) return work();
  const bar = new cliProgress.SingleBar(
    { format: `${label} [{bar}] {elapsed}s / {limit}s`, stream: process.stderr, clearOnComplete: true, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  const limit = Math.round(deadlineMs / 1000);
  const started = Date.now();
  bar.start(deadlineMs, 0, { elapsed: 0, limit });
  const tick = setInterval(() => {
    const elapsed = Date.now() - started;
    bar.update(Math.min(elapsed, deadlineMs), { elapsed: Math.round(elapsed / 1000), limit });
  }, 200);
  try {
    return await work();
  } finally {
    clearInterval(tick);
    bar.stop();
  }
};

/** A bar counting items done out of a total that may grow, on a terminal only (see `withProgress`). */
export const countingBar = (label: string, enabled: boolean) => {
  if (!enabled || !process.stderr.isTTY) return { update: (_done: number, _total: number) => {}, stop: () => {} };
  const bar = new cliProgress.SingleBar(
    { format: `${label} [{bar}] {value}/{total}`, stream: process.stderr, clearOnComplete: true, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(done: number, total: number) {
      if (!started) {
        bar.start(total, done);
        started = true;
      }
      bar.setTotal(total);
      bar.update(done);
    },
    stop() {
      if (started) bar.stop();
    },
  };
};
