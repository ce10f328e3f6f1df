"""Deployments of the Relais flows and their schedules."""
