import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { PROJECT_ROOT } from './config.ts';

/** The service entry points, for whatever runs them as processes (the embedded default, tests). */
export const SERVICE_SCRIPTS = {
  command: 'services/command/main.ts',
  projector: 'services/projector/main.ts',
  'host-agent': 'services/host-agent/main.ts',
} as const;
export type ServiceName = keyof typeof SERVICE_SCRIPTS;

export interface ServiceProcess {
  name: string;
  child: ChildProcess;
  /** Resolves once the service logged that it is ready. */
  ready: Promise<void>;
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export const spawnService = (
  service: ServiceName,
  env: Record<string, string>,
  opts: { label?: string; args?: string[]; onLine?: (line: string) => void } = {},
): ServiceProcess => {
  const profile = process.env.VIRTPLANE_CPU_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.VIRTPLANE_CPU_PROFILE_DIR}`] : [];
  const child = spawn(process.execPath, [...profile, '--import', 'tsx', join(PROJECT_ROOT, SERVICE_SCRIPTS[service]), ...(opts.args ?? [])], {
    cwd: PROJECT_ROOT,
    // Its lines are read here (readiness, relaying): JSON whatever the terminal this process runs on.
    env: { ...process.env, ...env, VIRTPLANE_LOG_FORMAT: 'json' },
    stdio: ['ignore', 'inherit', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : null))));
  let buffered = '';
  const ready = new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      buffered += d.toString();
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        opts.onLine?.(line);
        if (line.includes(' ready"')) resolve();
      }
    });
    void exited.then((code) => reject(new Error(`${opts.label ?? service} exited with ${code} before it was ready`)));
  });
  ready.catch(() => undefined);
  return {
    name: opts.label ?? service,
    child,
    ready,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
};
