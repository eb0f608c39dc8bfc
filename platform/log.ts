import { createRequire } from 'node:module';
import type { DestinationStream, Logger as PinoLogger, LoggerOptions } from 'pino';

/**
 * Structured logs on stderr through pino, so stdout stays free for what a command prints. Every line
 * is one JSON object: `{"level":"info","t":"<ISO time>","component":"command",...fields,"msg":"..."}`.
 *
 * `VIRTPLANE_LOG_LEVEL`: debug, info, warn, error or silent (info). `VIRTPLANE_LOG_FORMAT`: `json`,
 * `pretty` (coloured, one readable line per record, through pino-pretty) or `auto` (pretty when stderr
 * is a terminal, JSON otherwise; the default). pino and pino-pretty are loaded on the first logger
 * made, and pino-pretty only in pretty mode, so a command that never logs pays for neither.
 */
export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(component: string): Logger;
}

const LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
type Level = (typeof LEVELS)[number];
const levelOf = (v: string | undefined): Level => (LEVELS.includes(v as Level) ? (v as Level) : 'info');

const require = createRequire(import.meta.url);
let root: PinoLogger | undefined;

const pretty = (): boolean => {
  const format = process.env.VIRTPLANE_LOG_FORMAT;
  if (format === 'pretty') return true;
  if (format === 'json') return false;
  return process.stderr.isTTY === true;
};

const rootLogger = (): PinoLogger => {
  if (root) return root;
  const pino = require('pino') as typeof import('pino');
  const options: LoggerOptions = {
    level: 'debug',
    base: null,
    messageKey: 'msg',
    timestamp: () => `,"t":"${new Date().toISOString()}"`,
  };
  let destination: DestinationStream;
  if (pretty()) {
    const { build } = require('pino-pretty') as typeof import('pino-pretty');
    destination = build({ destination: 2, sync: true, colorize: process.stderr.isTTY === true, timestampKey: 't', messageFormat: '{component}: {msg}', ignore: 'component', singleLine: true, errorLikeObjectKeys: ['err'] });
  } else {
    // Labels rather than pino's numbers: the lines read the same as they always have.
    options.formatters = { level: (label) => ({ level: label }) };
    // Synchronous, so a line written just before process.exit is not lost.
    destination = pino.destination({ fd: 2, sync: true });
  }
  root = pino.default(options, destination);
  return root;
};

export const createLogger = (component: string, level: Level = levelOf(process.env.VIRTPLANE_LOG_LEVEL)): Logger => {
  let logger: PinoLogger | undefined;
  // Made on first use: importing a module that keeps a logger costs nothing until it logs.
  const get = () => {
    if (!logger) {
      logger = rootLogger().child({ component });
      logger.level = level;
    }
    return logger;
  };
  const write = (lvl: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => {
    if (level === 'silent' || LEVELS.indexOf(lvl) < LEVELS.indexOf(level)) return;
    if (fields) get()[lvl](fields, msg);
    else get()[lvl](msg);
  };
  return {
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
    // A child of the root rather than of this logger: pino would repeat the `component` key.
    child: (c) => createLogger(`${component}.${c}`, level),
  };
};
