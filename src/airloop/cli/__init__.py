"""The ``airloop`` command: thin fronts over the Engine and the store."""
