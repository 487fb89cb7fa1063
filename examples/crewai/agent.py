"""A CrewAI crew under agentfuse: ``planner`` and ``researcher`` take turns on a report until the fuse stops them.

Run it: ``python examples/crewai/agent.py`` (``pip install 'agentfuse[crewai]'``). It talks to
agentfuse's stand-in provider on loopback (no key, no cost), through CrewAI's native OpenAI
provider. Each agent is a child run of the crew's run; ``researcher`` has its own cap
(``children:`` in policy.yaml), so its second call is refused and the refusal ends ``kickoff``.
"""

from __future__ import annotations

import os
from pathlib import Path

from crewai import LLM, Agent, Crew, Process, Task

import agentfuse
from agentfuse.integrations.crewai import CrewFuse
from agentfuse.testing.standin import StandIn

POLICY = Path(__file__).with_name("policy.yaml")


def build(base_url: str) -> Crew:
    """Two agents and six tasks in turn, one model call each."""
    llm = LLM(model="gpt-4o", base_url=base_url, api_key="none", max_tokens=20)
    planner = Agent(role="planner", goal="Plan the report.", backstory="Plans reports.", llm=llm)
    researcher = Agent(role="researcher", goal="Find the facts.", backstory="Looks things up.", llm=llm)
    tasks = [
        Task(description=f"Part {n} of the report.", expected_output="A paragraph.",
             agent=planner if n % 2 == 0 else researcher)
        for n in range(6)
    ]
    return Crew(agents=[planner, researcher], tasks=tasks, process=Process.sequential)


def main() -> int:
    os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")  # CrewAI's telemetry would leave loopback
    os.environ.setdefault("OTEL_SDK_DISABLED", "true")
    guard = agentfuse.enforce(POLICY)
    fuse = CrewFuse(guard)  # instruments the guard; each agent a child run of the crew's
    with StandIn() as provider:
        try:
            fuse.kickoff(build(provider.openai_url))
        except agentfuse.Halted as refusal:
            print(f"stopped by agentfuse: {type(refusal).__name__} in run {refusal.run_id}")
        finally:
            fuse.close()
            guard.close()
        print(f"requests that reached the stand-in provider: {provider.requests}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
