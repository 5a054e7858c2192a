"""The soak at a tiny scale, so `make bench`'s soak never rots: every result produced is stored once."""

from __future__ import annotations

from bench.soak import SMOKE_SOAK, soak


async def test_soak_smoke(tmp_path):
    notes: list[str] = []
    rows = await soak(SMOKE_SOAK, tmp_path, notes)
    assert rows[0].measured == 0, notes
    assert notes and "stored" in notes[0]
