#!/usr/bin/env bash
# Everything a fresh Debian 12 machine needs before `npm start` or `npm test`.
set -euo pipefail
cd "$(dirname "$0")"
scripts/install-system-packages.sh
npm ci --no-audit --no-fund
