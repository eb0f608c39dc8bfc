#!/usr/bin/env node
// The probe for a service's health endpoint (platform/health.ts): plain Node with no dependency, so a
// container or a host runs it without the build.
//
//   node platform/health-check.mjs [--wait SECONDS] URL|PORT
//
// Asks once (or, with --wait, until it passes or the time is up) and exits 0 when the endpoint answers
// 200, 1 otherwise, with one line on stderr saying why. A bare PORT means http://127.0.0.1:PORT/readyz.
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
  process.stderr.write('usage: health-check.mjs [--wait SECONDS] URL|PORT\n');
  process.exit(2);
}
const url = /^\d+$/.test(target) ? `http://127.0.0.1:${target}/readyz` : target;
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
