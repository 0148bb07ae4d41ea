"""Checkers: pure functions `f(data: RunData, criteria: dict) -> list[Measurement]`.

One module per family of requirements (coverage, integrity, inventory, latency, stability,
tax, …); the catalogue (acceptance/requirements.py) names which function decides which
requirement. A checker reads the run directory only through `acceptance.rundir.RunData`, compares each
figure with its limit from `criteria` (acceptance/criteria.py), and says in each
measurement's evidence which stations and records are concerned (bounded in size).
"""
