/** Structured one-line logs on stderr, so stdout stays free for what a command prints. */
export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(component: string): Logger;
}

const LEVELS = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 } as const;

export const createLogger = (component: string, level: keyof typeof LEVELS = (process.env.VIRTPLANE_LOG_LEVEL as keyof typeof LEVELS) ?? 'info'): Logger => {
  const threshold = LEVELS[level] ?? LEVELS.info;
  const write = (lvl: keyof typeof LEVELS, msg: string, fields?: Record<string, unknown>) => {
    if (LEVELS[lvl] < threshold) return;
    process.stderr.write(`${JSON.stringify({ t: new Date().toISOString(), level: lvl, component, msg, ...fields })}\n`);
  };
  return {
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
    child: (c) => createLogger(`${component}.${c}`, level),
  };
};
