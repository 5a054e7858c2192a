"""The `hostcheck` command and the dev runner: the top of the import graph (nothing imports them)."""
