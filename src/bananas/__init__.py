"""Bananas: background jobs for Python that lose nothing."""

from .app import Bananas, JobFunction, JobSpec
from .context import JobContext, current_job
from .errors import (
    ArgumentsError,
    BananasError,
    BrokerError,
    BrokerUnavailable,
    ConfigError,
    JobFailed,
    JobTimeout,
    PayloadError,
    PayloadTooLarge,
    ReplicationTimeout,
)
from .handle import JobHandle
from .vocabulary import Priority, Status

__all__ = [
    "ArgumentsError",
    "Bananas",
    "BananasError",
    "BrokerError",
    "BrokerUnavailable",
    "ConfigError",
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
    "Status",
    "current_job",
]

__version__ = "0.1.0"
