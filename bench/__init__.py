"""Benchmarks of the performance goals (issue 8): `make bench` runs them, `make test` runs a smoke mode.

The services run as separate processes on Postgres and Redis with the production
defaults; thousands of agents are simulated by `bench.simagent` (the real stream
protocol and auth, many streams per process); single agents are the real agent process.
"""
