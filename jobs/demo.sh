#!/usr/bin/env bash
# The main job on its small embedded default: installs, builds, runs `cnflow demo` on 2 ranks.
# Extra arguments are passed to cnflow (e.g. -demo_epochs 5).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
mpiexec -n 2 --bind-to none "$BUILD_DIR/cnflow" demo "$@"
