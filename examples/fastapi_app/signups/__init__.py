"""FastAPI + Bananas example: a sign-up endpoint enqueues the welcome email."""
