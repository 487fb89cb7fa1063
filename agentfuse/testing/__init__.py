"""Helpers for testing agents that use agentfuse (the stand-in provider)."""
