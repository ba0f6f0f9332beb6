"""Specifications of the config groups and their validation (compose API and python -m ftexp)."""
