"""The SEC-1 attack phase: attacks on the broker, the platform's admission and its API
(intruder.py, dishonest.py, api.py; shared means in base.py), run and judged by phase.py.
An attack is one `@attack` function returning its attempts: copy one to add another.
"""
