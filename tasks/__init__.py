"""Prefect tasks: one I/O or side-effect boundary each."""
