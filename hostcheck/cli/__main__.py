"""`python -m hostcheck.cli` runs the `hostcheck` command."""

from hostcheck.cli.main import main

main()
