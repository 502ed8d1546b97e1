"""airloop: a workflow orchestrator rebuilt around one asyncio event loop."""
