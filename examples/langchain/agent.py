"""A LangGraph agent under agentfuse: ``plan`` and the ``researcher`` sub-agent take turns until the fuse stops them.

Run it: ``python examples/langchain/agent.py``. It talks to agentfuse's stand-in provider on
loopback (no key, no cost). ``researcher`` is a child run with its own cap (``children:`` in
policy.yaml), so its second call is refused and the refusal ends ``graph.invoke``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypedDict

from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, StateGraph

import agentfuse
from agentfuse.integrations.langchain import AgentfuseCallbackHandler
from agentfuse.testing.standin import StandIn

POLICY = Path(__file__).with_name("policy.yaml")


class State(TypedDict):
    turns: int


def build(base_url: str) -> Any:
    """The graph ``plan -> researcher -> plan -> ...``, each node one model call."""
    model = ChatOpenAI(model="gpt-4o", base_url=base_url, api_key="none", max_tokens=20, max_retries=2)

    def plan(state: State) -> State:
        model.invoke("Plan the next step.")
        return {"turns": state["turns"] + 1}

    def researcher(state: State) -> State:
        model.invoke("Look it up.")
        return {"turns": state["turns"] + 1}

    builder = StateGraph(State)
    builder.add_node("plan", plan)
    builder.add_node("researcher", researcher)
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "researcher")
    builder.add_conditional_edges("researcher", lambda state: END if state["turns"] >= 100 else "plan")
    return builder.compile()


def main() -> int:
    guard = agentfuse.enforce(POLICY)
    fuse = AgentfuseCallbackHandler(guard)  # instruments the guard; names steps; sub-agents as child runs
    with StandIn() as provider:
        try:
            build(provider.openai_url).invoke({"turns": 0}, config={"callbacks": [fuse], "recursion_limit": 1000})
        except agentfuse.Halted as refusal:
            print(f"stopped by agentfuse: {type(refusal).__name__} in run {refusal.run_id}")
        finally:
            fuse.close()
            guard.close()
        print(f"requests that reached the stand-in provider: {provider.requests}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
