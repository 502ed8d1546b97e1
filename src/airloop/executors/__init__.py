"""Executors: one API, one module per backend."""
