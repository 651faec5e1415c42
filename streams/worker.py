"""Running one LEAP worker process (``leap worker``)."""

from __future__ import annotations

import asyncio

import faust

from leap.contact import ContactPreferences
from leap.institution import load_institution
from leap.policy import load_policy
from leap.reference_data import load_reference_data
from leap.roster import Roster
from leap.settings import Settings
from streams.app import create_app
from streams.topics import ensure_topics

__all__ = ["run_worker"]


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Check inputs, create topics, then hand the process to Faust until stopped."""
    policy = load_policy(settings.policy)
    institution = load_institution(settings.institution)
    roster = Roster(institution, policy, settings.partitions)
    preferences = ContactPreferences()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(ensure_topics(settings))
    # Everything scored must know the reference data: load it before Faust starts.
    followers = loop.run_until_complete(load_reference_data(settings, roster, preferences))
    app = create_app(settings, roster, policy, preferences)
    for follower in followers:
        app.task(follower.follow)
    worker = faust.Worker(app, loglevel=loglevel, loop=loop)
    worker.execute_from_commandline()
