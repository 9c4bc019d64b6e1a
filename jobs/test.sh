#!/usr/bin/env bash
# The whole test suite: installs, builds, runs every ctest (serial, MPI, golden vs PyTorch).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$BUILD_DIR"
ctest --output-on-failure --timeout 900 -j "$(nproc)" "$@"
