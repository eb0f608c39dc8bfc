import { spawn, type ChildProcess } from 'node:child_process';
import { PROJECT_ROOT } from './config.ts';
import type { Readiness } from './ready.ts';
import { programArgs } from './runtime.ts';

/** The services, for whatever runs them as processes (the embedded default, tests, benchmarks). */
export const SERVICE_NAMES = ['command', 'projector', 'host-agent'] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

export interface ServiceProcess {
  name: string;
  child: ChildProcess;
  /** Resolves once the service said it is ready; rejects with its one-line reason when it could not start. */
  ready: Promise<void>;
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** A service that could not start: `reason` is its one line, `usage` a bad setting. */
export class ServiceStartError extends Error {
  override name = 'ServiceStartError';
  constructor(
    message: string,
    readonly usage = false,
  ) {
    super(message);
  }
}

/**
 * Starts a service as a child process with an IPC channel, over which it says it is ready (or why
 * it failed): readiness never depends on the log level or the log's wording. `fromSource` runs the
 * TypeScript through tsx instead of the bundle (default: however this process runs).
 */
export const spawnService = (
  service: ServiceName,
  env: Record<string, string>,
  opts: { label?: string; args?: string[]; onLine?: (line: string) => void; fromSource?: boolean } = {},
): ServiceProcess => {
  const profile = process.env.VIRTPLANE_CPU_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.VIRTPLANE_CPU_PROFILE_DIR}`] : [];
  const child = spawn(process.execPath, [...profile, ...programArgs(service, opts.fromSource), ...(opts.args ?? [])], {
    cwd: PROJECT_ROOT,
    // Its lines are read here (relaying): JSON whatever the terminal this process runs on.
    env: { ...process.env, ...env, VIRTPLANE_LOG_FORMAT: 'json' },
    stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
  });
  const label = opts.label ?? service;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : null))));
  let buffered = '';
  child.stderr!.on('data', (d: Buffer) => {
    buffered += d.toString();
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      opts.onLine?.(line);
    }
  });
  let failure: ServiceStartError | undefined;
  const ready = new Promise<void>((resolve, reject) => {
    child.on('message', (m: Readiness) => {
      if (m?.type === 'ready') resolve();
      else if (m?.type === 'failed') failure = new ServiceStartError(m.reason, m.usage);
    });
    // Its last message may still be in the channel when the exit is seen: read it before deciding why.
    const drained = () => new Promise<void>((r) => (child.connected ? (child.once('disconnect', () => r()), setTimeout(r, 1000).unref()) : r()));
    void exited.then(async (code) => {
      await drained();
      reject(failure ?? new ServiceStartError(`${label} exited with ${code} before it was ready`));
    });
  });
  ready.catch(() => undefined);
  // The channel stays open (a service stops when it closes) but never keeps this process alive.
  child.channel?.unref();
  return {
    name: label,
    child,
    ready,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
};
