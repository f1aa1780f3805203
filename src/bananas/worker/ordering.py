"""In which order a worker looks at its ready queues on each fetch.

strict:   high, then normal, then low; a lower priority runs only when every
          higher one is empty.
weighted: each fetch starts at a priority picked by smooth weighted
          round-robin (default high=6, normal=3, low=1: out of 10 fetches, 6
          start at high, 3 at normal, 1 at low), then falls through the others
          in strict order; low is never starved, high still dominates.
Within a priority the job types are rotated one step per fetch, so a busy
type cannot starve the others.
Routes (WORKER_ROUTING_KEYS, in order of preference) come outermost: a
worker serving gpu,default takes gpu work first while both have work, and
the priority policy orders work within each route. With the one route
`default` the orders are exactly those of a worker before routes.

Fetch n uses priority sequence n mod S (S = the weighted cycle, 1 for
strict) and type rotation n mod T. Orders are made on demand, one per fetch:
precomputing every combination cost S x T orders of P x T queues each
(quadratic in the job types: 1,000 types, weighted, was 2.1 GB and 6.4 s to
start). What is kept is linear: per priority, its queues twice over, so a
rotation is one slice and an order P slices joined (no tuple built per fetch).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from ..brokers.base import QueueRef
from ..keys import lane
from ..routes import DEFAULT_ROUTE
from ..vocabulary import PRIORITIES, Mode


def served_types(mode: Mode, chosen: Sequence[str], registered: Collection[str]) -> tuple[str, ...]:
    """The job types a worker takes: WORKER_JOB_TYPES among those it
    registers (all of them, sorted, when unset); none in a scheduler mode."""
    if not mode.takes_jobs:
        return ()
    if chosen:
        return tuple(t for t in chosen if t in registered)
    return tuple(sorted(registered))


def served_priorities(mode: Mode, chosen: tuple[str, ...]) -> tuple[str, ...]:
    """The priorities a worker takes: every one in a mode that takes all."""
    if not mode.takes_jobs:
        return ()
    return PRIORITIES if mode.takes_all_priorities else chosen


def smooth_weighted(weights: dict[str, int]) -> list[str]:
    """Nginx-style smooth weighted round-robin: one cycle of sum(weights) picks."""
    current = dict.fromkeys(weights, 0)
    total = sum(weights.values())
    picks = []
    for _ in range(total):
        for name, weight in weights.items():
            current[name] += weight
        best = max(current, key=lambda n: current[n])
        current[best] -= total
        picks.append(best)
    return picks


class FetchOrders:
    """The queue order of each fetch, in turn (`next(orders)`); empty (falsy)
    when there is nothing to fetch."""

    __slots__ = ("_doubled", "_n", "_sequences", "_types")

    def __init__(
        self,
        priorities: tuple[str, ...],
        types: tuple[str, ...],
        policy: str = "strict",
        weights: dict[str, int] | None = None,
        routes: tuple[str, ...] = (DEFAULT_ROUTE,),
    ) -> None:
        self._types = len(types) if priorities and routes else 0
        self._n = 0
        # Per priority, its queues on every route, route by route: a
        # sequence's slices then run routes x (priorities in sequence order).
        doubled = {
            p: tuple(tuple((lane(r, p), t) for t in types + types) for r in routes)
            for p in priorities
        }
        if policy == "strict" or len(priorities) == 1:
            picks = [priorities[0]] if priorities else []
        else:
            picks = smooth_weighted({p: (weights or {}).get(p, 1) for p in priorities})
        # One sequence per distinct start, shared by every pick of it: the
        # doubled queue tuples of that start, then of the others in strict order.
        by_start = {
            p: tuple(
                doubled[q][r]
                for r in range(len(routes))
                for q in (p, *(q for q in priorities if q != p))
            )
            for p in priorities
        }
        self._sequences = [by_start[first] for first in picks]

    def __bool__(self) -> bool:
        return self._types > 0

    def __iter__(self) -> FetchOrders:
        return self

    def __next__(self) -> list[QueueRef]:
        n = self._n
        self._n = n + 1
        start = n % self._types
        end = start + self._types
        order: list[QueueRef] = []
        for queues in self._sequences[n % len(self._sequences)]:
            order += queues[start:end]
        return order

    def cycle_length(self) -> int:
        """Fetches after which the orders repeat."""
        return len(self._sequences) * self._types if self._types else 0


def queue_orders(
    priorities: tuple[str, ...],
    types: tuple[str, ...],
    policy: str = "strict",
    weights: dict[str, int] | None = None,
    routes: tuple[str, ...] = (DEFAULT_ROUTE,),
) -> list[list[QueueRef]]:
    """One full cycle of orders as a list (tests and tools; the worker uses
    `FetchOrders`, which makes them one at a time)."""
    orders = FetchOrders(priorities, types, policy, weights, routes)
    return [next(orders) for _ in range(orders.cycle_length())]
