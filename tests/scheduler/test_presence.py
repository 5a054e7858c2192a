"""A presence written by another version of the scheduler still reads (rolling upgrades share live state)."""

from __future__ import annotations

import json

from hostcheck.services.storage.livestate import Presence


def test_a_presence_with_fields_this_version_does_not_know_reads():
    stored = {"agent_id": "a1", "scheduler_id": "s-1", "last_heartbeat": 1.0, "location": "Frankfurt, DE",
              "city": "Frankfurt", "from_a_newer_version": 7}
    got = Presence.from_json(json.dumps(stored))
    assert (got.agent_id, got.location, got.city, got.region) == ("a1", "Frankfurt, DE", "Frankfurt", "")


def test_a_presence_from_before_locations_reads():
    got = Presence.from_json(b'{"agent_id": "a1", "scheduler_id": "s-1", "last_heartbeat": 1.0, "name": "n"}')
    assert (got.name, got.location) == ("n", "")
