"""Accountant exports: CSV per month, streamed."""
