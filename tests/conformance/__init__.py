"""Broker conformance: every test runs on every broker and must pass unchanged."""
