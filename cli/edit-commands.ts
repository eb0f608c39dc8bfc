import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import type { VirtplaneClient } from '../client/index.ts';
import { failing } from './errors.ts';
import type { CliHelpers } from './network-commands.ts';

/**
 * virsh edit, net-edit and pool-edit: the stored XML in $VISUAL or $EDITOR (vi when neither is set),
 * and, when it changed, defined again from what was saved. A failed define changes nothing; the
 * edited copy is kept and its path given, so the work is not lost.
 */

/** Runs the editor as virsh does: through the shell, so an EDITOR with arguments works. */
const runEditor = (file: string): Promise<void> => {
  const editor = process.env.VISUAL || process.env.EDITOR || 'vi';
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', `${editor} "$1"`, 'editor', file], { stdio: 'inherit' });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${editor}: command terminated with ${signal ? `signal ${signal}` : `exit status ${code}`}`));
    });
  });
};

interface Editable {
  verb: string;
  what: string;
  /** The XML as stored (the definition for the next start when one is waiting). */
  read(c: VirtplaneClient, ref: string): Promise<{ name: string; xml: string }>;
  define(c: VirtplaneClient, xml: string): Promise<unknown>;
  /** virsh's success and no-change lines. */
  edited(name: string): string;
  unchanged(name: string): string;
  /** Domains get virsh's "failed to get domain" line for an unknown name. */
  domain?: boolean;
}

const EDITABLE: Editable[] = [
  {
    verb: 'edit',
    what: 'domain',
    domain: true,
    read: async (c, ref) => {
      const v = await c.get(ref);
      const def = v.nextDefinition ?? v.definition;
      return { name: v.name, xml: def.xml ?? (await import('../contracts/xml/index.ts')).formatDomainXml(def) };
    },
    define: (c, xml) => c.define({ xml }),
    edited: (name) => `Domain '${name}' XML configuration edited.`,
    unchanged: (name) => `Domain '${name}' XML configuration not changed.`,
  },
  {
    verb: 'net-edit',
    what: 'network',
    read: async (c, ref) => {
      const v = await c.netGet(ref);
      const def = v.nextDefinition ?? v.definition;
      return { name: v.name, xml: def.xml ?? (await import('../contracts/xml/index.ts')).formatNetworkXml(def) };
    },
    define: (c, xml) => c.netDefine({ xml }),
    edited: (name) => `Network ${name} XML configuration edited.`,
    unchanged: (name) => `Network ${name} XML configuration not changed.`,
  },
  {
    verb: 'pool-edit',
    what: 'storage pool',
    read: async (c, ref) => {
      const v = await c.poolGet(ref);
      const def = v.nextDefinition ?? v.definition;
      return { name: v.name, xml: def.xml ?? (await import('../contracts/xml/index.ts')).formatPoolXml(def) };
    },
    define: (c, xml) => c.poolDefine({ xml }),
    edited: (name) => `Pool ${name} XML configuration edited.`,
    unchanged: (name) => `Pool ${name} XML configuration not changed.`,
  },
];

export const registerEditCommands = (program: Command, h: CliHelpers): void => {
  for (const e of EDITABLE) {
    program
      .command(e.verb)
      .description(`edit a ${e.what}'s XML in $VISUAL or $EDITOR and define it again when it changed`)
      .argument(`<${e.what === 'storage pool' ? 'pool' : e.what}>`, 'name or uuid')
      .action(async (ref: string) => {
        const message = await failing(null, e.domain ? ref : null, () =>
          h.withClient(async (c) => {
            const { name, xml } = await e.read(c, ref);
            const dir = await mkdtemp(join(tmpdir(), `virtplane-${e.verb}-`));
            const file = join(dir, `${name.replace(/[^\w.-]/g, '_')}.xml`);
            await writeFile(file, xml, { mode: 0o600 });
            let keep = false;
            try {
              await runEditor(file);
              const after = await readFile(file, 'utf8');
              if (after === xml) return e.unchanged(name);
              try {
                await e.define(c, after);
              } catch (err) {
                keep = true;
                if (err instanceof Error) err.message = `${err.message} (the edited copy is kept in ${file})`;
                throw err;
              }
              return e.edited(name);
            } finally {
              if (!keep) await rm(dir, { recursive: true, force: true });
            }
          }),
        );
        h.out().result(message, { message });
      });
  }
};
