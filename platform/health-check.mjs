#!/usr/bin/env node
// The probe for a service's health endpoint (platform/health.ts): plain Node with no dependency, so a
// container or a host runs it without the build.
//
//   node platform/health-check.mjs [--wait SECONDS] URL|HOST:PORT|PORT
//
// Asks once (or, with --wait, until it passes or the time is up) and exits 0 when the endpoint answers
// 200, 1 otherwise, with one line on stderr saying why. HOST:PORT (as VIRTPLANE_HEALTH_LISTEN takes it)
// means http://HOST:PORT/readyz, a bare PORT the same on 127.0.0.1.
// Docker's HEALTHCHECK runs it once; systemd's ExecStartPost runs it with --wait, so the unit becomes
// active only when the service serves.
const args = process.argv.slice(2);
let waitS = 0;
let target;
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--wait') waitS = Number(args[++i]);
  else if (target === undefined) target = args[i];
  else target = '';
}
if (!target || !Number.isFinite(waitS) || waitS < 0) {
  process.stderr.write('usage: health-check.mjs [--wait SECONDS] URL|HOST:PORT|PORT\n');
  process.exit(2);
}
const listen = /^\d+$/.test(target) ? `127.0.0.1:${target}` : target;
// A wildcard listen address is asked on loopback.
const url = /^[a-z]+:\/\//.test(listen) ? listen : `http://${listen.replace(/^(0\.0\.0\.0|\[::\]):/, '127.0.0.1:')}/readyz`;
const deadline = Date.now() + waitS * 1000;
let why = '';
for (;;) {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    const body = (await res.text()).trim();
    if (res.status === 200) process.exit(0);
    why = `${res.status} ${body}`;
  } catch (e) {
    why = e?.cause?.code ?? e?.name ?? String(e);
  }
  if (Date.now() >= deadline) break;
  await new Promise((r) => setTimeout(r, 250));
}
process.stderr.write(`not ready: ${url}: ${why}\n`);
process.exit(1);
