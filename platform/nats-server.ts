import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';

/**
 * Launches a nats-server with JetStream that this process owns: for tests (a temporary store on a
 * free port) and for the embedded default (a data directory under the project).
 */
export interface NatsServerOptions {
  /** Store directory; a temporary one (removed on stop) when absent. */
  storeDir?: string;
  /** Port; a free one when absent. Never 4222, which belongs to whatever else runs on the machine. */
  port?: number;
  binary?: string;
  /** Extra arguments, e.g. `-c cluster.conf`. */
  args?: string[];
  logFile?: string;
  /** Configuration files to include (users and permissions, TLS): absolute paths. */
  includes?: string[];
  /** The whole configuration file's text (a cluster node's, say); the default only raises max_payload. */
  config?: string;
}

export interface RunningNatsServer {
  url: string;
  port: number;
  storeDir: string;
  pid: number;
  process: ChildProcess;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export const freePort = async (): Promise<number> =>
  new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port === 4222 ? freePort().then(resolve, reject) : resolve(port)));
    });
  });

const portAccepts = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    import('node:net').then(({ connect }) => {
      const s = connect({ port, host: '127.0.0.1' });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
  });

export const startNatsServer = async (opts: NatsServerOptions = {}): Promise<RunningNatsServer> => {
  const temporary = opts.storeDir === undefined;
  const storeDir = opts.storeDir ?? (await mkdtemp(join(tmpdir(), 'virtplane-nats-')));
  await mkdir(storeDir, { recursive: true });
  const port = opts.port ?? (await freePort());
  if (port === 4222) throw new Error('refusing to start nats-server on 4222: that port belongs to the machine');
  // Room for documents up to the XML layer's own limit, so that limit (with its clear xml-error) is
  // what a too-large definition meets, not the transport's 1 MiB default.
  const conf = join(storeDir, 'virtplane-nats.conf');
  // nats-server resolves an include relative to the including file, and refuses absolute paths.
  const includes = (opts.includes ?? []).map((f) => `include ${JSON.stringify(relative(dirname(conf), f))}
`).join('');
  // With users to reload, JetStream goes in the file rather than the flags: a reload compares against
  // the file and would otherwise shut JetStream down.
  const reloadable = includes !== '';
  await writeFile(conf, opts.config ?? `max_payload: 4MB
${reloadable ? `jetstream { store_dir: ${JSON.stringify(storeDir)} }
` : ''}${includes}`);
  // A given configuration names its own listen address and store (`port` and `storeDir` must agree).
  const where = opts.config ? [] : ['-a', '127.0.0.1', '-p', String(port), ...(reloadable ? [] : ['-js', '-sd', storeDir])];
  const args = ['-c', conf, ...where, ...(opts.args ?? [])];
  if (opts.logFile) args.push('-l', opts.logFile);
  const child = spawn(opts.binary ?? 'nats-server', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  const deadline = Date.now() + 10_000;
  for (;;) {
    const status = await Promise.race([
      portAccepts(port).then((ok) => (ok ? 'up' : 'down')),
      exited.then(() => 'exited'),
      spawnError.then((e) => `error: ${e.message}`),
    ]);
    if (status === 'up') break;
    if (status !== 'down') {
      if (temporary) await rm(storeDir, { recursive: true, force: true });
      throw new Error(`nats-server did not start (${status}): ${stderr.trim()}`);
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`nats-server did not listen on ${port} within 10s: ${stderr.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    pid: child.pid ?? -1,
    process: child,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      if (temporary) await rm(storeDir, { recursive: true, force: true });
    },
  };
};
