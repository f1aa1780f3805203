"""Workflows: chain, group, chord (docs/workflows.md)."""

from .canvas import Chain, Chord, Group, chain, chord, group
from .handle import WorkflowFailed, WorkflowHandle

__all__ = ["Chain", "Chord", "Group", "WorkflowFailed", "WorkflowHandle", "chain", "chord", "group"]
