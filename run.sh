#!/usr/bin/env bash
# Set up and run the main job on embedded defaults: an acceptance run of the demonstration
# scenario (scenarios/smoke.yaml: two stations, two days, a cheat, a collector crash, a
# network cut, a silent dispenser) against the reference collector and platform, ending with
# the path of the county self-inspection report. Extra arguments go to `forecourt run`
# (e.g. --lang en, --broker mosquitto, --sut-mutant drop, or another scenario's file with
# SCENARIO=...). It exits with the verdict's code: 0 accepted, 1 not accepted, 3 incomplete.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
scenario=${SCENARIO:-scenarios/smoke.yaml}
out=runs/$(basename "$scenario" .yaml)-$(date +%Y%m%d-%H%M%S)
set +e
forecourt run "$scenario" --out "$out" "$@"
code=$?
set -e
case $code in
  0) echo "verdict: accepted (exit 0)" ;;
  1) echo "verdict: NOT accepted (exit 1) — see the rectification ledger in the report" ;;
  3) echo "verdict: incomplete (exit 3) — MUST requirements the run did not prove are named" \
          "above and next to the verdict in the report" ;;
  *) echo "the harness could not run (exit $code)"; exit $code ;;
esac
echo "run directory: $(pwd)/$out"
exit $code  # the verdict's exit code, as `forecourt run` gave it
