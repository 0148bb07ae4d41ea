#!/usr/bin/env bash
# Set up and run the main job on embedded defaults: the Urad Middle Banner fleet
# (46 stations × 180 days) simulated, ground truth in runs/banner. Extra arguments go to
# `forecourt simulate` (e.g. --days 30).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
forecourt validate scenarios/urad-middle-banner.yaml
forecourt simulate scenarios/urad-middle-banner.yaml --out runs/banner "$@"
echo "ground truth: $(pwd)/runs/banner (manifest: runs/banner/manifest.json)"
