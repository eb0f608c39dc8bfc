import type { Command } from 'commander';
import type { DomainView } from '../client/index.ts';
import { liveDefinition } from '../contracts/domain/live.ts';
import { isActive } from '../contracts/domain/state.ts';
import type { GraphicsModel } from '../contracts/domain/definition.ts';
import { virtError } from '../contracts/errors.ts';
import { Exit, failing, VerbFailed } from './errors.ts';
import type { CliHelpers } from './network-commands.ts';

/** virsh's escape character, Ctrl-]. */
const ESCAPE = 0x1d;

/** virsh's own check before it asks libvirt for a console or a display. */
const notRunning = (words: string) => new VerbFailed(null, virtError('operation-invalid', 'Requested operation is not valid: domain is not running'), words);

/** The running guest's VNC displays as its live XML shows them, with the port the host gave each. */
const vncDisplays = (v: DomainView): GraphicsModel[] =>
  liveDefinition(v.definition, v.observed, v.interfaces, v.devices).devices.graphics.filter((g) => g.type === 'vnc' && g.port !== undefined && g.port >= 0);

const listenOf = (g: GraphicsModel): string | undefined => g.listen ?? g.listens?.find((l) => l.type === 'address' || l.type === undefined)?.address;

/** virsh's verbs that reach a running guest's console and display: console, ttyconsole, vncdisplay, domdisplay. */
export const registerConsoleCommands = (program: Command, h: CliHelpers): void => {
  program
    .command('console')
    .description("connect to the guest's serial console; Ctrl-] leaves it")
    .argument('<domain>', 'name or uuid')
    .option('--devname <name>', 'the character device (its alias: serial0, console1)')
    .option('--force', 'take the console from a session that holds it')
    // VIR_DOMAIN_CONSOLE_SAFE asks for a driver that gives a console to one session at a time and
    // never lets another take it unasked: the host agent's console always works so, so --safe is met.
    .option('--safe', 'only connect if safe console handling is supported (it always is)')
    .action(async (domain: string, o: { devname?: string; force?: boolean; safe?: boolean }) => {
      await h.withClient(async (c) => {
        const v = await failing(null, domain, () => c.get(domain));
        if (v.hostLost || !isActive(v.observed.state)) throw notRunning('The domain is not running');
        process.stdout.write(`Connected to domain '${v.name}'\nEscape character is ^] (Ctrl + ])\n`);
        const out = (chunk: Uint8Array) => new Promise<void>((resolve) => process.stdout.write(chunk, () => resolve()));
        const session = await failing(null, domain, () => c.console(v, { ...(o.devname ? { devName: o.devname } : {}), force: Boolean(o.force), onData: out }));
        const stdin = process.stdin;
        // A terminal is put in raw mode, so Ctrl-C and friends reach the guest; pipes are read as they come.
        const raw = stdin.isTTY === true;
        if (raw) stdin.setRawMode(true);
        const leave = () => void session.close();
        stdin.on('data', (chunk: Buffer) => {
          const at = chunk.indexOf(ESCAPE);
          session.write(at < 0 ? chunk : chunk.subarray(0, at));
          if (at >= 0) leave();
        });
        stdin.once('end', leave);
        const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
        for (const sig of signals) process.on(sig, leave);
        try {
          const end = await session.ended;
          if (end.reason !== 'closed' && end.reason !== 'guest-gone') {
            throw new VerbFailed(null, virtError('operation-failed', `operation failed: ${end.message}`));
          }
        } finally {
          for (const sig of signals) process.off(sig, leave);
          if (raw) {
            stdin.setRawMode(false);
            process.stdout.write('\n');
          }
          // Nothing more is read: a pipe or terminal left open must not keep the command running.
          stdin.destroy();
        }
      });
    });

  program
    .command('ttyconsole')
    .description("the host pty of the guest's console")
    .argument('<domain>', 'name or uuid')
    .action(async (domain: string) => {
      const v = await failing(null, domain, () => h.withClient((c) => c.get(domain)));
      const tty = liveDefinition(v.definition, v.observed, v.interfaces, v.devices).devices.consoles[0]?.tty;
      // virsh prints nothing and fails when the live XML names no console pty (a guest shut off).
      if (!tty) throw new Exit(1);
      h.out().result(tty, { tty });
    });

  program
    .command('vncdisplay')
    .description("the guest's VNC display, as address:display")
    .argument('<domain>', 'name or uuid')
    .action(async (domain: string) => {
      const v = await failing(null, domain, () => h.withClient((c) => c.get(domain)));
      if (v.hostLost || !isActive(v.observed.state)) throw notRunning('Domain is not running');
      const g = vncDisplays(v)[0];
      if (!g) throw new VerbFailed(null, virtError('operation-failed', 'Failed to get VNC port. Is this domain using VNC?'), 'Failed to get VNC port. Is this domain using VNC?');
      const listen = listenOf(g);
      const display = g.port! - 5900;
      const text = !listen || listen === '0.0.0.0' ? `:${display}` : `${listen}:${display}`;
      h.out().result(text, { listen: listen ?? null, port: g.port, display });
    });

  program
    .command('domdisplay')
    .description("the URI of the guest's graphical display")
    .argument('<domain>', 'name or uuid')
    .option('--include-password', "put the display's password in the URI")
    .option('--type <type>', 'only a display of this type (vnc)')
    .option('--all', 'every display, one a line')
    .action(async (domain: string, o: { includePassword?: boolean; type?: string; all?: boolean }) => {
      await h.withClient(async (c) => {
        const v = await failing(null, domain, () => c.get(domain));
        if (v.hostLost || !isActive(v.observed.state)) throw notRunning('Domain is not running');
        const displays = o.type === undefined || o.type === 'vnc' ? vncDisplays(v) : [];
        // A display listening everywhere is reached by its host's name, as virsh uses the server of the URI.
        const hostname = displays.some((g) => isWildcard(listenOf(g))) ? await c.host(v.hostId).then((x) => x.hostname).catch(() => undefined) : undefined;
        const uris = displays.map((g) => {
          const listen = listenOf(g);
          const where = isWildcard(listen) ? hostname : listen;
          const host = !where ? 'localhost' : where.includes(':') ? `[${where}]` : where;
          const password = o.includePassword && g.passwd ? `:${g.passwd}@` : '';
          return `vnc://${password}${host}:${g.port! - 5900}`;
        });
        if (uris.length === 0) throw new VerbFailed(null, virtError('operation-failed', 'No graphical display found'), 'No graphical display found');
        const shown = o.all ? uris : uris.slice(0, 1);
        h.out().result(shown.join('\n'), shown);
      });
    });
};

const isWildcard = (listen: string | undefined): boolean => listen === '0.0.0.0' || listen === '::';
