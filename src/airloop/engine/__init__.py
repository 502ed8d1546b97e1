"""The async shell around the pure core: scheduler, runner, logs, the Engine."""
