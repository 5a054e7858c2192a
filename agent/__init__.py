"""The agent: registers, holds one stream to a scheduler, runs checks with its probers."""

import sys

# httpx (loaded only by an HTTP/2 check, probers/_http2.py) imports its command-line client, and
# with it click, rich and pygments (~4 MB of RSS), whenever rich is installed, as it is beside
# `hostcheck check`. The agent never runs it: a None entry makes that one import fail, which httpx
# handles (httpx.main then says it is not installed). Set here, before anything imports httpx.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
