"""Tests that try to break Relais: faults, concurrency, hostile input, access control."""
