"""Providers: hooks, operators and sensors for external systems."""
