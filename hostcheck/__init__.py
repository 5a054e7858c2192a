"""Host Checker: a self-hosted, distributed host checker.

One import namespace. The repository's top-level folders are mapped into it (see
README, "Repository"): `hostcheck.v1` is the generated API (gen/hostcheck/v1),
`hostcheck.core` the small shared core, `hostcheck.agent` the agent (agent/),
`hostcheck.services` the registry, scheduler and results services (services/),
`hostcheck.gateway` the edge (gateway/), and `hostcheck.cli` the command line and
dev runner on top. Imports point down only: cli -> services, agent -> core -> v1.
"""

__version__ = "0.1.0"
