"""Bananas: background jobs for Python that lose nothing."""

from .app import Bananas, JobFunction, JobSpec
from .brokers.records import CancelOutcome
from .context import JobContext, current_job
from .errors import (
    ArgumentsError,
    BananasError,
    BrokerError,
    BrokerUnavailable,
    ConfigError,
    JobCancelled,
    JobFailed,
    JobTimeout,
    PayloadError,
    PayloadTooLarge,
    ReplicationTimeout,
    RetryLater,
)
from .handle import JobHandle
from .vocabulary import Priority, Status
from .workflows import WorkflowFailed, WorkflowHandle, chain, chord, group

__all__ = [
    "ArgumentsError",
    "Bananas",
    "BananasError",
    "BrokerError",
    "BrokerUnavailable",
    "CancelOutcome",
    "ConfigError",
    "JobCancelled",
    "JobContext",
    "JobFailed",
    "JobFunction",
    "JobHandle",
    "JobSpec",
    "JobTimeout",
    "PayloadError",
    "PayloadTooLarge",
    "Priority",
    "ReplicationTimeout",
    "RetryLater",
    "Status",
    "WorkflowFailed",
    "WorkflowHandle",
    "chain",
    "chord",
    "current_job",
    "group",
]

__version__ = "0.1.0"
