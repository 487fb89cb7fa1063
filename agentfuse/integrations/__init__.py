"""Framework adapters: what a framework knows and the provider SDKs do not.

``guard.instrument()`` already gates every request the SDKs under a framework send; an adapter
adds sub-agents as child runs (capped by the policy's ``children:``), action names after the
framework's nodes, tools and agents, and the usage of models whose SDK is not instrumented.
Each module imports its framework, so each is an optional extra: ``agentfuse[langchain]``,
``[openai-agents]``, ``[pydantic-ai]``, ``[crewai]``, ``[litellm]``.
"""
