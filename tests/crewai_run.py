"""Crew runs under a CrewFuse, in the CrewAI venv (``tests/crewai_venv.py``), against a stand-in.

``python crewai_run.py POLICY BASE_URL [--custom-llm] [--stop-file PATH --at N] [--halt --at N]``
runs one crew; ``python crewai_run.py --serve`` runs one per line of stdin (a JSON list of those
arguments), so that a test module imports CrewAI once.

The crew: agents ``planner`` and ``researcher`` take turns over 40 sequential tasks, one model
request each (the stand-in answers in plain text, a final answer); every agent is a child run of
the crew's run. After each task, ``--stop-file`` touches the policy's STOP file and ``--halt``
runs ``agentfuse halt`` (a real operator command, in its own process) once the stand-in has
seen ``--at`` requests. ``--async-tasks`` runs the researcher's tasks with ``async_execution``
(in threads of their own). ``--kickoff plain`` calls ``crew.kickoff()`` itself, ``--kickoff async``
awaits ``fuse.akickoff(crew)`` (default: ``fuse.kickoff(crew)``). ``--tool`` gives ``planner`` a
tool that calls a model itself (a stand-in with ``tool_turns`` has it called after every answer).
``--custom-llm`` gives the
agents a CrewAI ``BaseLLM`` of its own that posts to the stand-in with urllib (no SDK agentfuse
instruments), so the fuse's hooks gate it.

Each run prints one line, ``crew-outcome: {json}``: the refusal's class and run id (or none), the
crew's run id, which guard and action name this context is charged to after the kickoff, and the
SDKs still instrumented and CrewAI hooks still registered once the fuse and guard are closed. A
crash is a traceback and a non-zero exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import traceback
import urllib.request
from pathlib import Path
from typing import Any

import openai
from crewai import LLM, Agent, Crew, Process, Task
from crewai.tools import tool
from crewai.hooks import (
    get_after_llm_call_hooks, get_after_tool_call_hooks, get_before_llm_call_hooks, get_before_tool_call_hooks,
)
from crewai.llms.base_llm import BaseLLM

import agentfuse
from agentfuse.integrations.crewai import CrewFuse
from agentfuse.runtime import instrument

TASKS = 40
HUNG_AFTER_S = 120
OUTCOME = "crew-outcome:"
"""What starts the line of an outcome (CrewAI may print lines of its own)."""


class UrllibLLM(BaseLLM):
    """A model CrewAI knows only as a ``BaseLLM``: OpenAI's wire format over urllib, usage tracked."""

    base_url: str = ""

    def call(self, messages: Any, tools: Any = None, callbacks: Any = None, available_functions: Any = None,
             from_task: Any = None, from_agent: Any = None, response_model: Any = None) -> str:
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        body = json.dumps({"model": self.model, "max_tokens": 20, "messages": messages}).encode()
        request = urllib.request.Request(f"{self.base_url}/chat/completions", data=body,
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            reply = json.load(answer)
        self._track_token_usage_internal(reply["usage"])
        return str(reply["choices"][0]["message"]["content"])

    async def acall(self, *args: Any, **kwargs: Any) -> str:
        return self.call(*args, **kwargs)


def summarise_tool(base_url: str) -> Any:
    """A CrewAI tool that asks a model of its own (the openai SDK, instrumented) for a summary."""
    client = openai.OpenAI(base_url=base_url, api_key="none", max_retries=0)

    @tool("summarise")
    def summarise() -> str:
        """Summarise the notes so far."""
        answer = client.chat.completions.create(model="gpt-4o", max_tokens=20,
                                                messages=[{"role": "user", "content": "Summarise."}])
        return answer.choices[0].message.content or ""

    return summarise


def hung() -> None:
    """A kickoff that never returns (a refusal lost in a thread) ends the runner with an outcome that says so."""
    print(OUTCOME, json.dumps({"error": f"crew.kickoff() still running after {HUNG_AFTER_S} s"}), flush=True)
    os._exit(3)


def requests_seen(base_url: str) -> int:
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/standin/stats", timeout=10) as answer:
        return int(json.load(answer)["requests"])


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("policy")
    parser.add_argument("base_url")
    parser.add_argument("--custom-llm", action="store_true")
    parser.add_argument("--async-tasks", action="store_true")
    parser.add_argument("--kickoff", choices=("fuse", "plain", "async"), default="fuse")
    parser.add_argument("--tool", action="store_true")
    parser.add_argument("--stop-file")
    parser.add_argument("--halt", action="store_true")
    parser.add_argument("--at", type=int, default=0)
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build the crew, kick it off under a fresh guard and fuse, and say how it ended."""
    guard = agentfuse.enforce(args.policy)
    fuse = CrewFuse(guard)

    def after_task(output: Any) -> None:
        if requests_seen(args.base_url) != args.at:
            return
        if args.stop_file:
            Path(args.stop_file).touch()
        if args.halt:
            subprocess.run([sys.executable, "-m", "agentfuse", "halt", "--agent", guard.agent, "--policy", args.policy,
                            "--reason", "operator test"], check=True, capture_output=True)

    if args.custom_llm:
        llm: Any = UrllibLLM(model="gpt-4o", base_url=args.base_url)
    else:  # CrewAI's native OpenAI provider: the openai SDK, instrumented underneath
        llm = LLM(model="gpt-4o", base_url=args.base_url, api_key="none", max_tokens=20)
    planner = Agent(role="planner", goal="Plan the report.", backstory="A planner.", llm=llm,
                    tools=[summarise_tool(args.base_url)] if args.tool else [])
    researcher = Agent(role="researcher", goal="Find the facts.", backstory="A researcher.", llm=llm)
    tasks = [Task(description=f"Part {n} of the report.", expected_output="A paragraph.",
                  agent=planner if n % 2 == 0 else researcher,
                  async_execution=args.async_tasks and n % 2 == 1 and n < TASKS - 1) for n in range(TASKS)]
    crew = Crew(agents=[planner, researcher], tasks=tasks, process=Process.sequential, task_callback=after_task)
    outcome: dict[str, Any] = {"crew_run": guard.run_id, "refusal": None, "run_id": None}
    watchdog = threading.Timer(HUNG_AFTER_S, hung)
    watchdog.start()
    try:
        if args.kickoff == "fuse":
            fuse.kickoff(crew)
        elif args.kickoff == "async":
            asyncio.run(fuse.akickoff(crew))
        else:
            crew.kickoff()
    except agentfuse.Halted as refusal:
        outcome.update(refusal=type(refusal).__name__, run_id=refusal.run_id)
    finally:
        watchdog.cancel()
        charged = instrument.charged_guard()
        outcome["charged_after"] = None if charged is None else charged.run_id
        outcome["action_after"] = instrument.name_action(None)
        fuse.close()
        guard.uninstrument()
        guard.close()
    outcome["instrumented_after_close"] = instrument.instrumented_providers()
    hooks = (get_before_llm_call_hooks, get_after_llm_call_hooks, get_before_tool_call_hooks, get_after_tool_call_hooks)
    outcome["hooks_after_close"] = sum(len(registered()) for registered in hooks)
    return outcome


def main() -> int:
    """One crew run from the arguments, or (``--serve``) one per line of JSON arguments on stdin."""
    if sys.argv[1:] != ["--serve"]:
        print(OUTCOME, json.dumps(run(parse(sys.argv[1:]))), flush=True)
        return 0
    for line in sys.stdin:  # CrewAI takes seconds to import: a test module pays for it once
        try:
            outcome = run(parse(json.loads(line)))
        except Exception:  # the test shows it; the next run still gets its answer
            outcome = {"error": traceback.format_exc()}
        print(OUTCOME, json.dumps(outcome), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
