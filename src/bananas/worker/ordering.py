"""In which order a worker looks at its ready queues on each fetch.

strict:   high, then normal, then low; a lower priority runs only when every
          higher one is empty.
weighted: each fetch starts at a priority picked by smooth weighted
          round-robin (default high=6, normal=3, low=1: out of 10 fetches, 6
          start at high, 3 at normal, 1 at low), then falls through the others
          in strict order; low is never starved, high still dominates.
Within a priority the job types are rotated one step per fetch, so a busy
type cannot starve the others.

All orders are computed once at start; the fetch loop just cycles through them.
"""

from __future__ import annotations

from ..brokers.base import QueueRef


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


def queue_orders(
    priorities: tuple[str, ...],
    types: tuple[str, ...],
    policy: str = "strict",
    weights: dict[str, int] | None = None,
) -> list[list[QueueRef]]:
    if not priorities or not types:
        return []
    rotations = [types[i:] + types[:i] for i in range(len(types))]
    if policy == "strict" or len(priorities) == 1:
        return [[(p, t) for p in priorities for t in rotated] for rotated in rotations]
    chosen = {p: (weights or {}).get(p, 1) for p in priorities}
    starts = smooth_weighted(chosen)
    orders = []
    # One full cycle of both the weighted starts and the type rotations.
    for i in range(len(starts) * len(rotations)):
        first = starts[i % len(starts)]
        rotated = rotations[i % len(rotations)]
        sequence = [first, *(p for p in priorities if p != first)]
        orders.append([(p, t) for p in sequence for t in rotated])
    return orders
