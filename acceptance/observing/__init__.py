"""Observe mode (`forecourt observe`): watch a live platform through its API for days to
months, without ground truth, and judge STB-1 (连续稳定运行6个月) from what it serves.

- `aggregate`: pure figures (local days, sequence and totalizer chains, percentiles, runs);
- `store`: the observe directory's SQLite state (cursors, samples, records, daily figures);
- `poll`: one poll of the API, committed in one transaction;
- `verdict`: the run record (record.json) from the stored state;
- `command`: the command line, the loop, signals and resumption.

docs/observe.md describes the command and what each figure means.
"""
