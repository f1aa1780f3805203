"""`bananas demo`: Bananas' main job end to end on one machine, no Redis needed.

It starts a thin-mode worker and a scheduler as real processes on a fresh
embedded SQLite file (.bananas/demo.db, unless BANANAS_BROKER_URL or --broker
names a broker), enqueues a web shop's mix of jobs (three priorities,
several job types, delayed jobs, one that fails twice and then succeeds, one
that ends in the dead-letter queue), shows their progress live, stops the
processes gracefully and prints a summary with the next commands to try.

The parts: `plan` (which jobs), `processes` (the worker and scheduler),
`progress` (the live display), `summary` (what happened), `run` (all of it
in order). The jobs themselves are in `bananas.demo_jobs`.
"""

from .run import run

__all__ = ["run"]
