import { execFile, type ExecFileException } from 'node:child_process';

/**
 * Runs iproute2, nft, sysctl and dnsmasq on the host or inside one network namespace. Arguments
 * always travel as argv (never through a shell), and every name that reaches them is validated
 * by the caller first.
 */

export const NETNS_RE = /^[A-Za-z0-9_.-]{1,64}$/;

export class CommandError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(`${argv.join(' ')} failed${exitCode === null ? '' : ` (exit ${exitCode})`}: ${stderr.trim() || 'no output'}`);
    this.name = 'CommandError';
  }

  /** The object was already there (EEXIST from netlink/nft, EBUSY from an exclusive TUNSETIFF). */
  get exists(): boolean {
    return /File exists|Device or resource busy/.test(this.stderr);
  }

  /** The object was not there, which clean-up treats as done. */
  get missing(): boolean {
    return /Cannot find device|does not exist|No such file or directory|No such device/.test(this.stderr);
  }
}

export interface RunOptions {
  stdin?: string;
  timeoutMs?: number;
}

export class HostCommands {
  constructor(readonly netns?: string) {
    if (netns !== undefined && !NETNS_RE.test(netns)) {
      throw new Error(`invalid network namespace name '${netns}'`);
    }
  }

  /** `ip` with `-n NS`, which switches namespace for netlink and the tun ioctl alike. */
  ip(args: readonly string[], opts?: RunOptions): Promise<string> {
    return run('ip', this.netns ? ['-n', this.netns, ...args] : [...args], opts);
  }

  /** Any other program, run inside the namespace through `ip netns exec`. */
  inNs(cmd: string, args: readonly string[], opts?: RunOptions): Promise<string> {
    return this.netns ? run('ip', ['netns', 'exec', this.netns, cmd, ...args], opts) : run(cmd, args, opts);
  }

  nft(script: string): Promise<string> {
    return this.inNs('nft', ['-f', '-'], { stdin: script });
  }
}

export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' },
      (err: ExecFileException | null, stdout: string, stderr: string) => {
        if (err) {
          const code = typeof err.code === 'number' ? err.code : null;
          reject(new CommandError([cmd, ...args], code, stderr || err.message));
        } else {
          resolve(stdout);
        }
      },
    );
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(opts.stdin ?? '');
  });
}
