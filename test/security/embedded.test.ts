import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STREAMS } from '../../contracts/subjects.ts';
import { EmbeddedAddress, embeddedAddressFile, PROJECT_ROOT, resolveNatsUrl } from '../../platform/config.ts';
import { connectNats } from '../../platform/nats.ts';
import { startEmbedded, type Embedded } from '../fixtures/embedded.ts';

const run = promisify(execFile);
const CLI = join(PROJECT_ROOT, 'bin', 'virtplane.mjs');

/** `npm start` runs with authentication on, and the CLI logs in as it finds the address. */
describe('the embedded default', () => {
  let dataDir: string;
  let embedded: Embedded | undefined;
  let url: string;
  const env = () => ({ ...process.env, VIRTPLANE_DATA_DIR: dataDir, VIRTPLANE_NATS_URL: '', VIRTPLANE_NATS_CONTEXT: '' });
  const virtplane = async (...args: string[]) => {
    try {
      return (await run(process.execPath, [CLI, ...args], { env: env(), timeout: 60_000 })).stdout;
    } catch (e) {
      const err = e as Error & { stdout?: string; stderr?: string };
      throw new Error(`virtplane ${args.join(' ')}: ${err.message} ${err.stdout ?? ''} ${err.stderr ?? ''}`);
    }
  };

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'vp-embedded-auth-'));
    embedded = await startEmbedded({ ...env(), VIRTPLANE_DRIVER: 'test', VIRTPLANE_HOST_ID: 'emb-host' });
    url = EmbeddedAddress.parse(JSON.parse(readFileSync(embeddedAddressFile(dataDir), 'utf8'))).url;
  }, 150_000);
  afterAll(async () => {
    await embedded?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('refuses anyone without credentials', async () => {
    await expect(connectNats(url, 'anonymous')).rejects.toThrow(/Authorization/);
  });

  it('lets the CLI in as the local operator with no flags, and enrols a new host', async () => {
    expect(JSON.parse(await virtplane('host-list', '--json')).map((h: { hostId: string }) => h.hostId)).toEqual(['emb-host']);
    const enrolled = JSON.parse(await virtplane('--json', 'host-enroll', 'emb-2'));
    expect(enrolled).toMatchObject({ hostId: 'emb-2', reloaded: true });
    const end = Date.now() + 10_000;
    for (;;) {
      const n = await connectNats(resolveNatsUrl({ natsUrl: url, dataDir, natsContext: enrolled.context }), 'emb-2').catch((e: Error) => e);
      if (!(n instanceof Error)) {
        // Its task consumer is there for it to pull from; it could not have made it itself.
        expect((await n.jsm.consumers.info(STREAMS.tasks, 'agent-emb-2')).config.filter_subject).toBe('task.emb-2');
        await n.close();
        break;
      }
      if (Date.now() > end) throw n;
      await new Promise((r) => setTimeout(r, 200));
    }
  }, 120_000);

  it("keeps the log from the operator and even the embedded default's admin", async () => {
    const admin = await connectNats(resolveNatsUrl({ natsUrl: url, dataDir, natsContext: join(dataDir, 'auth', 'admin.json') }), 'admin');
    await expect(admin.jsm.streams.purge(STREAMS.events)).rejects.toThrow(/Permissions Violation/);
    await expect(admin.jsm.streams.delete(STREAMS.events)).rejects.toThrow(/Permissions Violation/);
    await admin.close();
  });
});
