import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from './config.ts';

/**
 * Where the programs are: a built tree runs the bundles in dist/ with plain node; a source checkout
 * (tests, development) runs the TypeScript through tsx. Whichever this module was loaded from is
 * what it starts, so a bundle never starts sources and the tests never start a stale bundle.
 */
export const FROM_SOURCE = import.meta.url.endsWith('.ts');

const SOURCES = {
  command: 'services/command/main.ts',
  projector: 'services/projector/main.ts',
  'host-agent': 'services/host-agent/main.ts',
  embedded: 'infra/embedded.ts',
  cli: 'cli/entry.ts',
  'fence-guard': 'services/host-agent/fence-guard-main.ts',
} as const;
export type Program = keyof typeof SOURCES;

export const distFile = (program: Program): string => join(PROJECT_ROOT, 'dist', `${program}.mjs`);
export const isBuilt = (): boolean => existsSync(distFile('cli'));

/** The node arguments that run `program` the way this process itself runs. */
export const programArgs = (program: Program, fromSource = FROM_SOURCE): string[] =>
  fromSource ? ['--import', 'tsx', join(PROJECT_ROOT, SOURCES[program])] : ['--enable-source-maps', distFile(program)];
