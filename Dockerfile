# syntax=docker/dockerfile:1
# virtplane's image: the built services, agent and CLI on Node 20 (infra/README.md).
#
#   docker build -t virtplane .                 # services and the test-driver agent, as user `node`
#   docker build -t virtplane-agent --target agent .   # a host agent that runs QEMU/KVM guests (root)

# Build: the whole tree, its dev dependencies, `npm run build` into dist/, then only what runs is kept.
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY . .
RUN npm ci && npm run build \
 # The credential bootstrap of the compose file (infra/auth.ts init|prepare), bundled like the services.
 && npx esbuild infra/auth.ts --bundle --platform=node --format=esm --packages=external --sourcemap --outfile=dist/auth.mjs \
 && npm prune --omit=dev

# Runtime: dist/ and the production node_modules, no compiler, no sources, not root.
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    NODE_OPTIONS=--enable-source-maps \
    VIRTPLANE_DATA_DIR=/var/lib/virtplane \
    VIRTPLANE_HEALTH_LISTEN=127.0.0.1:7460 \
    VIRTPLANE_LOG_FORMAT=json
WORKDIR /app
COPY --from=build /src/package.json /src/package-lock.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/platform/health-check.mjs ./platform/health-check.mjs
COPY --from=build /src/infra/nats ./infra/nats
COPY --from=build /src/examples ./examples
# Named volumes mounted on these start with their owner: the `node` user can write its state and keys.
RUN mkdir -p /var/lib/virtplane /auth && chown node:node /var/lib/virtplane /auth \
 && printf '#!/bin/sh\nexec node /app/dist/cli.mjs "$@"\n' > /usr/local/bin/virtplane && chmod 755 /usr/local/bin/virtplane
USER node
# Every service answers on VIRTPLANE_HEALTH_LISTEN (platform/health.ts); the probe needs no build.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD node /app/platform/health-check.mjs "$VIRTPLANE_HEALTH_LISTEN"
CMD ["node", "dist/cli.mjs", "--help"]

# A host agent for real guests: QEMU/KVM, bridges, taps, nftables and dnsmasq need root and the
# host's devices and network (`privileged`, `network_mode: host`, /dev/kvm; see docker-compose.yml).
FROM runtime AS agent
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends qemu-system-x86 qemu-utils iproute2 nftables dnsmasq-base \
 && rm -rf /var/lib/apt/lists/*
CMD ["node", "dist/host-agent.mjs"]
