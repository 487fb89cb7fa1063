"""The agentfuse callback of the LiteLLM proxy in config.yaml (``litellm_settings.callbacks``).

Every request is gated by the policy of its key's team (``teams/<team id>.yaml``, else
``policy.yaml``) before it leaves the proxy, and settled from the usage the provider reports.
"""

from __future__ import annotations

from pathlib import Path

from agentfuse.integrations.litellm import ProxyFuse

HERE = Path(__file__).resolve().parent

fuse = ProxyFuse(HERE / "policy.yaml", teams={path.stem: path for path in sorted(HERE.glob("teams/*.yaml"))})
