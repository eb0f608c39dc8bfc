import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EmbeddedAddress, embeddedAddressFile } from './config.ts';

/**
 * What `virtplane up`, `down` and `status` know of the embedded default: its address file (written
 * once everything is ready, removed when it stops) and the guests its host agent left running.
 */

export const pidAlive = (pid: number | undefined): boolean => {
  if (pid === undefined || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: alive, only not ours to signal.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/** The address file, if there is a readable one (running or left behind by a crash). */
export const readEmbedded = (dataDir: string): EmbeddedAddress | null => {
  try {
    const parsed = EmbeddedAddress.safeParse(JSON.parse(readFileSync(embeddedAddressFile(dataDir), 'utf8')));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
};

/** Guests whose qemu still runs under the data directory's host state: they outlive their agent by design. */
export const runningGuests = (dataDir: string): Array<{ name: string; uuid: string; pid: number }> => {
  const found: Array<{ name: string; uuid: string; pid: number }> = [];
  const hostsDir = join(dataDir, 'hosts');
  const list = (dir: string) => {
    try {
      return readdirSync(dir);
    } catch {
      return [];
    }
  };
  for (const host of list(hostsDir)) {
    for (const uuid of list(join(hostsDir, host, 'qemu'))) {
      const dir = join(hostsDir, host, 'qemu', uuid);
      const pid = Number(readText(join(dir, 'qemu.pid')).trim());
      if (!pidAlive(pid)) continue;
      let name = uuid;
      try {
        name = String((JSON.parse(readText(join(dir, 'domain.json'))) as { name?: string }).name ?? uuid);
      } catch {
        // A record being rewritten: the uuid names it well enough.
      }
      found.push({ name, uuid, pid });
    }
  }
  return found;
};

const readText = (file: string): string => {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
};

/** One sentence on guests left running, or nothing when there are none. */
export const guestsLeftNote = (dataDir: string): string | null => {
  const guests = runningGuests(dataDir);
  if (guests.length === 0) return null;
  const names = guests.map((g) => g.name).join(', ');
  return `${guests.length} guest${guests.length === 1 ? '' : 's'} still running (${names}): the host agent adopts them at the next start; \`virtplane down --destroy-guests\` stops them`;
};

export const waitForExit = async (pid: number, ms: number): Promise<boolean> => {
  const end = Date.now() + ms;
  while (pidAlive(pid)) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
};
