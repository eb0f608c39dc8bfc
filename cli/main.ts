import { readFile } from 'node:fs/promises';
import { Command, CommanderError, Option } from 'commander';
import { DOMAIN_STATE_NUMBER, VIRSH_STATE_LABEL } from '../contracts/domain/state.ts';
import type { LifecycleOp } from '../contracts/domain/events.ts';
import { VirtplaneClient, type CommandAccepted } from '../client/index.ts';
import type { DomainDefinitionInput } from '../contracts/domain/definition.ts';
import { domainList, dominfo, HOST_LOST_LABEL, hostInfo, hostList, lifecycleLine, parsePageSize } from './format.ts';
import { withProgress } from './progress.ts';
import { validateFiles } from './validate.ts';
import { initTelemetry } from '../platform/telemetry.ts';
import { formatDomainXml } from '../contracts/xml/index.ts';
import { withRestartOnHostLoss } from '../contracts/domain/ha.ts';
import { registerNetworkCommands } from './network-commands.ts';
import { registerStorageCommands } from './storage-commands.ts';
import { registerAuthCommands } from './auth-commands.ts';
import { registerCompletion, setUpProgram } from './program.ts';
import { registerEmbeddedCommands } from './embedded-commands.ts';
import { describeFailure, Exit, EXIT, UsageError } from './errors.ts';
import { registerHostCommands } from './host-commands.ts';

interface Globals {
  server?: string;
  json?: boolean;
  actor?: string;
  settings?: string;
  context?: string;
  creds?: string;
  nkey?: string;
  user?: string;
  password?: string;
  token?: string;
  tlsca?: string;
  tlscert?: string;
  tlskey?: string;
  principal?: string;
}

class Output {
  constructor(private readonly json: boolean) {}
  result(human: string, data: unknown) {
    process.stdout.write(`${this.json ? JSON.stringify(data, null, 2) : human}\n`);
  }
}

/** Messages virsh prints on success, so scripts and people see what they expect. */
const DONE: Record<LifecycleOp, (name: string) => string> = {
  start: (n) => `Domain '${n}' started`,
  shutdown: (n) => `Domain '${n}' is being shutdown`,
  destroy: (n) => `Domain '${n}' destroyed`,
  suspend: (n) => `Domain '${n}' suspended`,
  resume: (n) => `Domain '${n}' resumed`,
  reboot: (n) => `Domain '${n}' is being rebooted`,
};

/** virsh waits for these; shutdown and reboot only ask the guest, unless --wait. */
const WAITS_BY_DEFAULT: Record<LifecycleOp, boolean> = {
  start: true,
  shutdown: false,
  destroy: true,
  suspend: true,
  resume: true,
  reboot: false,
};

export const buildProgram = (): Command => {
  const program = new Command('virtplane')
    .description('virsh verbs for a fleet: domains, hosts and lifecycle events over NATS')
    .option('-s, --server <url>', 'NATS URL (default: the embedded server started by `npm start`; env VIRTPLANE_NATS_URL)')
    .option('--json', 'print JSON instead of tables')
    .option('--actor <name>', 'a note beside your name in the audit trail (the recorded actor is who you logged in as)')
    .option('--settings <file>', 'a JSON file of settings (env VIRTPLANE_CONFIG)')
    .option('--context <name|file>', 'a NATS context to log in with (env VIRTPLANE_NATS_CONTEXT; default: the embedded default\'s operator)')
    .option('--creds <file>', 'a NATS creds file (env VIRTPLANE_NATS_CREDS)')
    .option('--nkey <file>', 'a file holding an nkey seed (env VIRTPLANE_NATS_NKEY)')
    .option('--user <name>', 'NATS user (env VIRTPLANE_NATS_USER)')
    .option('--password <password>', 'NATS password (env VIRTPLANE_NATS_PASSWORD)')
    .option('--token <token>', 'NATS token (env VIRTPLANE_NATS_TOKEN)')
    .option('--tlsca <file>', 'CA of the server certificate (env VIRTPLANE_NATS_CA)')
    .option('--tlscert <file>', 'client certificate (env VIRTPLANE_NATS_CERT)')
    .option('--tlskey <file>', 'client key (env VIRTPLANE_NATS_KEY)')
    .option('--principal <name>', 'the principal these credentials belong to, when their file does not say (env VIRTPLANE_PRINCIPAL)');
  setUpProgram(program);

  const globals = () => program.opts<Globals>();
  const out = () => new Output(Boolean(globals().json));
  const withClient = async <T>(fn: (c: VirtplaneClient) => Promise<T>): Promise<T> => {
    const g = globals();
    const given = {
      config: g.settings,
      natsContext: g.context,
      natsCreds: g.creds,
      natsNkey: g.nkey,
      natsUser: g.user,
      natsPassword: g.password,
      natsToken: g.token,
      natsCa: g.tlsca,
      natsCert: g.tlscert,
      natsKey: g.tlskey,
      principal: g.principal,
    };
    const credentials = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined));
    const c = await VirtplaneClient.connect({ credentials, ...(g.server ? { url: g.server } : {}), ...(g.actor ? { actor: g.actor } : {}) });
    try {
      return await fn(c);
    } finally {
      await c.close();
    }
  };

  program
    .command('list')
    .description('list domains (active ones unless --all)')
    .option('--all', 'include inactive domains')
    .option('--host <hostId>', 'only domains placed on this host')
    .option('--state <state>', 'only domains in this state (running, paused, shutoff, ...)')
    .option('--name <text>', 'only domains whose name contains this')
    .option('--page-size <n>', 'domains per request (the list is read page by page to the end)', parsePageSize)
    .action(async (o: { all?: boolean; host?: string; state?: string; name?: string; pageSize?: number }) => {
      const views = await withClient((c) =>
        c.list({
          all: Boolean(o.all) || o.state !== undefined,
          ...(o.host ? { host: o.host } : {}),
          ...(o.state ? { state: o.state as never } : {}),
          ...(o.name ? { name: o.name } : {}),
          ...(o.pageSize ? { pageSize: o.pageSize } : {}),
        }),
      );
      out().result(domainList(views), views);
    });

  program
    .command('define')
    .description('define a domain from libvirt XML or a JSON file, or from --name/--memory/--vcpus')
    .argument('[file]', 'libvirt domain XML or a JSON definition')
    .option('--name <name>', 'domain name')
    .option('--memory <MiB>', 'memory in MiB')
    .option('--vcpus <n>', 'virtual CPUs', '1')
    .option('--type <type>', 'domain type (test, kvm, qemu)', 'test')
    .option('--uuid <uuid>', 'domain uuid (generated when absent)')
    .option('--host <hostId>', 'place the domain on this host')
    .option('--ha', 'restart the domain on another host when its host is lost (kept in <metadata>)')
    .action(async (file: string | undefined, o: { name?: string; memory?: string; vcpus: string; type: string; uuid?: string; host?: string; ha?: boolean }) => {
      const host = o.host ? { hostId: o.host } : {};
      let input: Parameters<VirtplaneClient['define']>[0];
      if (file) {
        const text = await readFile(file, 'utf8');
        // The command service checks a JSON definition against the schema and names each bad field.
        input = text.trimStart().startsWith('<') ? { xml: text, ...host } : { definition: parseJson(text, file) as DomainDefinitionInput, ...host };
      } else {
        if (!o.name || !o.memory) throw new UsageError('define needs a FILE, or --name and --memory');
        input = {
          definition: {
            name: o.name,
            type: o.type,
            memoryKiB: Number(o.memory) * 1024,
            vcpus: Number(o.vcpus),
            ...(o.uuid ? { uuid: o.uuid } : {}),
            ...(o.ha ? { metadata: withRestartOnHostLoss(undefined) } : {}),
          },
          ...host,
        };
      }
      if (file && o.ha) throw new UsageError('--ha goes with --name; in a file, put it in <metadata> (see `virtplane define --help`)');
      const r = await withClient((c) => c.define(input));
      out().result(`Domain '${r.name}' defined${file ? ` from ${file}` : ''}`, r);
    });

  program
    .command('undefine')
    .description('undefine a domain (a running one keeps running as transient)')
    .argument('<domain>', 'name or uuid')
    .action(async (domain: string) => {
      const r = await withClient((c) => c.undefine(domain));
      out().result(`Domain '${r.name}' has been undefined`, r);
    });

  for (const op of ['start', 'shutdown', 'destroy', 'suspend', 'resume', 'reboot'] as const) {
    const cmd = program
      .command(op)
      .description(`${op} a domain`)
      .argument('<domain>', 'name or uuid')
      .addOption(new Option('--wait', 'wait until the host has finished').default(WAITS_BY_DEFAULT[op]))
      .option('--no-wait', 'return once the command is accepted')
      .option('--timeout <seconds>', 'deadline for the host to finish; the operation is recorded failed after it', '120');
    if (op === 'start') cmd.option('--paused', 'leave the guest paused after start');
    if (op === 'destroy') cmd.option('--force', "the domain's host is lost and known to be off: record the domain shut off");
    cmd.action(async (domain: string, o: { wait: boolean; paused?: boolean; timeout: string; force?: boolean }) => {
      const timeoutSeconds = Number(o.timeout);
      const result = await withClient(async (c) => {
        const opts = { timeoutSeconds };
        if (o.force) {
          const accepted = await c.destroy(domain, { ...opts, force: true });
          return { accepted, view: null };
        }
        const accepted: CommandAccepted = op === 'start' ? await c.start(domain, { ...opts, paused: Boolean(o.paused) }) : await c.operation(op, domain, opts);
        if (!o.wait) return { accepted, view: null };
        const view = await withProgress(`${op} ${accepted.name}`, timeoutSeconds * 1000, !globals().json, () => c.outcome(accepted, timeoutSeconds * 1000));
        return { accepted, view };
      });
      const message = op === 'start' && o.paused ? `Domain '${result.accepted.name}' started (paused)` : DONE[op](result.accepted.name);
      out().result(message, result);
    });
  }

  const scope = (o: { live?: boolean; config?: boolean; persistent?: boolean }) => ({
    ...(o.live || o.persistent ? { live: true } : {}),
    ...(o.config || o.persistent ? { config: true } : {}),
  });
  program
    .command('attach-interface')
    .description('plug a network interface into a domain (live when running, config otherwise)')
    .argument('<domain>', 'name or uuid')
    .argument('<type>', 'network, bridge, ethernet, direct or user')
    .argument('[source]', 'network name, bridge or host device')
    .option('--model <model>', 'device model, e.g. virtio')
    .option('--mac <mac>', 'MAC address (52:54:00:xx:xx:xx generated when absent)')
    .option('--target <dev>', 'host device name (or a %d template)')
    .option('--live', 'change the running domain')
    .option('--config', 'change the persistent definition')
    .option('--persistent', 'both --live and --config')
    .action(async (domain: string, type: string, source: string | undefined, o: { model?: string; mac?: string; target?: string; live?: boolean; config?: boolean; persistent?: boolean }) => {
      const key = type === 'network' ? 'network' : type === 'bridge' ? 'bridge' : 'dev';
      const iface = {
        type,
        ...(source ? { source: { [key]: source } } : {}),
        ...(o.model ? { model: o.model } : {}),
        ...(o.mac ? { mac: o.mac } : {}),
        ...(o.target ? { targetDev: o.target } : {}),
      };
      const view = await withClient(async (c) => c.outcome(await c.attachInterface(domain, iface, scope(o)), 120_000));
      out().result('Interface attached successfully', view);
    });

  program
    .command('detach-interface')
    .description('unplug a network interface from a domain, by MAC address')
    .argument('<domain>', 'name or uuid')
    .argument('<type>', 'interface type (as virsh takes it)')
    .requiredOption('--mac <mac>', 'MAC address of the interface')
    .option('--live', 'change the running domain')
    .option('--config', 'change the persistent definition')
    .option('--persistent', 'both --live and --config')
    .action(async (domain: string, _type: string, o: { mac: string; live?: boolean; config?: boolean; persistent?: boolean }) => {
      const view = await withClient(async (c) => c.outcome(await c.detachInterface(domain, o.mac, scope(o)), 120_000));
      out().result('Interface detached successfully', view);
    });

  program
    .command('dominfo')
    .description('domain information')
    .argument('<domain>', 'name or uuid')
    .action(async (domain: string) => {
      const v = await withClient((c) => c.get(domain));
      out().result(dominfo(v), v);
    });

  program
    .command('dumpxml')
    .description('the domain as libvirt XML, as virtplane stores it')
    .argument('<domain>', 'name or uuid')
    .option('--inactive', 'the definition for the next boot, when one was recorded while the domain ran')
    .action(async (domain: string, o: { inactive?: boolean }) => {
      const v = await withClient((c) => c.get(domain));
      const def = o.inactive && v.nextDefinition ? v.nextDefinition : v.definition;
      const xml = def.xml ?? formatDomainXml(def);
      out().result(xml.trimEnd(), { domainId: v.id, xml });
    });

  program
    .command('domstate')
    .description('domain state')
    .argument('<domain>', 'name or uuid')
    .option('--reason', 'also print the reason for the state')
    .action(async (domain: string, o: { reason?: boolean }) => {
      const v = await withClient((c) => c.get(domain));
      const label = v.hostLost ? HOST_LOST_LABEL : VIRSH_STATE_LABEL[v.observed.state];
      out().result(o.reason ? `${label} (${v.observed.reason})` : label, {
        state: v.observed.state,
        reason: v.observed.reason,
        stateNumber: DOMAIN_STATE_NUMBER[v.observed.state],
        ...(v.hostLost ? { hostLost: true } : {}),
      });
    });

  program
    .command('event')
    .description('print lifecycle events (the first one, or all with --loop)')
    .option('--domain <domain>', 'only events of this domain (name or uuid)')
    .option('--loop', 'keep printing events until interrupted or --timeout')
    .option('--all', 'start from the oldest stored event instead of new ones')
    .option('--timeout <seconds>', 'stop after this many seconds')
    .action(async (o: { domain?: string; loop?: boolean; all?: boolean; timeout?: string }) => {
      await withClient(async (c) => {
        const domainId = o.domain ? (await c.get(o.domain)).id : undefined;
        const ac = new AbortController();
        const timer = o.timeout ? setTimeout(() => ac.abort(), Number(o.timeout) * 1000) : null;
        process.once('SIGINT', () => ac.abort());
        const output = out();
        let count = 0;
        for await (const e of c.lifecycle({ ...(domainId ? { domainId } : {}), from: o.all ? 'all' : 'new', signal: ac.signal })) {
          output.result(lifecycleLine(e), e);
          count++;
          if (!o.loop) break;
        }
        if (timer) clearTimeout(timer);
        if (!globals().json) process.stdout.write(`events received: ${count}\n`);
      });
    });

  program
    .command('validate')
    .description('check libvirt XML documents offline, as virt-xml-validate does (the root element tells the kind)')
    .argument('<files...>', 'domain, network, pool or volume XML')
    .option('--format', 'print each document as virtplane stores it (what dumpxml returns after a define)')
    .action(async (files: string[], o: { format?: boolean }) => {
      const code = await validateFiles(files, { format: Boolean(o.format) }, (line) => process.stdout.write(`${line}\n`));
      if (code !== 0) throw new ValidationFailed(code);
    });

  program
    .command('host-list')
    .description('list hosts and their agents')
    .option('--page-size <n>', 'hosts per request', parsePageSize)
    .action(async (o: { pageSize?: number }) => {
      const hosts = await withClient((c) => c.hosts(o.pageSize ? { pageSize: o.pageSize } : {}));
      out().result(hostList(hosts), hosts);
    });

  program
    .command('host-info')
    .description('one host: its state, lease, capabilities, domains and free memory')
    .argument('<host>', 'host id')
    .action(async (host: string) => {
      const h = await withClient((c) => c.host(host));
      out().result(hostInfo(h), h);
    });

  program
    .command('host-maintenance')
    .description('take a host out of placement (on) or give it back (off); its domains stay where they are')
    .argument('<host>', 'host id')
    .argument('<on|off>', 'on or off')
    .action(async (host: string, mode: string) => {
      if (mode !== 'on' && mode !== 'off') throw new UsageError("host-maintenance takes 'on' or 'off'");
      const r = await withClient((c) => c.hostMaintenance(host, mode === 'on'));
      out().result(`Host '${r.hostId}' maintenance ${r.maintenance ? 'on: no new domains are placed on it' : 'off'}`, r);
    });

  registerNetworkCommands(program, { out, withClient, json: () => Boolean(globals().json), usageError: (m) => new UsageError(m) });
  registerStorageCommands(program, { out, withClient, json: () => Boolean(globals().json), usageError: (m) => new UsageError(m) });
  registerHostCommands(program, { out, withClient, json: () => Boolean(globals().json) });
  registerAuthCommands(program, { out, server: () => globals().server, withClient });
  registerEmbeddedCommands(program, { out, withClient, json: () => Boolean(globals().json), usageError: (m) => new UsageError(m), settings: () => globals().settings });
  registerCompletion(program);

  return program;
};


/** validate already printed its verdict per file; only the exit code is left to give. */
class ValidationFailed extends Error {
  constructor(readonly code: number) {
    super('validation failed');
  }
}

const parseJson = (text: string, file: string): Record<string, unknown> => {
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new UsageError(`${file}: malformed JSON: ${(e as Error).message}`);
  }
};

/** Runs the CLI and returns the exit code: 0 on success, 1 on an error reply, 2 on a usage error. */
export const main = async (argv: string[]): Promise<number> => {
  initTelemetry();
  const program = buildProgram();
  const json = argv.includes('--json');
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof ValidationFailed) return e.code;
    // Commander printed its own message (or the help, or the version) already.
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : EXIT.usage;
    if (e instanceof Exit) {
      if (e.message) process.stderr.write(`error: ${e.message}\n`);
      return e.code;
    }
    const { body, exit, coded } = describeFailure(e);
    if (json) process.stdout.write(`${JSON.stringify({ ok: false, error: body }, null, 2)}\n`);
    else process.stderr.write(`error: ${body.message}${coded ? ` [${body.code}]` : ''}\n`);
    if (!coded && body.code === 'internal-error' && process.env.VIRTPLANE_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
    return exit;
  }
};
