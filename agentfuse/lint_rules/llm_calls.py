"""Rule AF101: an LLM request that no agentfuse guard sees."""

from __future__ import annotations

from agentfuse.lint_rules._llm_analysis import LlmAnalysisRule, ModuleAnalysis
from agentfuse.lint_rules._triggers import LLM_OPTIONS, LLM_REQUEST_TRIGGERS, LLM_TRIGGERS
from agentfuse.lint_rules import _llm_examples as examples
from agentfuse.lint_rules.base import Rule

GUARD_FIX = (
    "wrap it in `with guard.step():`, decorate its function with `@guard`, "
    "or call `guard.instrument()` once at start-up"
)


class UnguardedLlmCall(LlmAnalysisRule):
    """An LLM request outside any agentfuse guard is invisible to the budget, the breaker and
    the kill switch: one runaway loop around it can spend without limit.

    Heuristic: requests come from the catalogue of provider APIs (openai and Azure, anthropic,
    litellm, google-genai and google.generativeai/vertexai, mistral, cohere, groq, together,
    cerebras, huggingface_hub, instructor, boto3 bedrock-runtime, ollama, LangChain and
    LlamaIndex models, the OpenAI Agents SDK's ``Runner``, and subprocesses running the
    ``claude``, ``llm``, ``codex`` or ``ollama run`` CLIs). Receivers are followed through
    assignments, ``self.x = ...`` in any method, annotations, aliases and call chains. A call
    is guarded when it is lexically inside a function decorated with a guard, a ``with`` /
    ``async with`` on a guard or its ``step()``/``child()``, or a function or lambda handed to
    ``guard.call``; a function whose every call site in the module is guarded is guarded too.
    A guard is anything bound to ``agentfuse.enforce(...)`` or annotated ``agentfuse.Guard``.
    A module that calls ``guard.instrument()`` or builds a framework adapter with a guard has
    every request guarded (see :mod:`._llm_instrumented`).

    Options (``[tool.agentfuse]``): ``llm-apis`` adds request APIs (``"mylib.ask"`` for a
    function, ``"mylib.Client().chat.send"`` for a method of an object built by
    ``mylib.Client``); ``guard-names`` adds names (or dotted names like ``"app.guard"``) that
    count as guards, for guards built in another module; ``instrumented`` names modules (a
    package covers its submodules) whose requests run under ``guard.instrument()``.

    Clients returned by a function or method of the same module count as clients; a request
    method handed to another callable (``asyncio.to_thread(client.messages.create, ...)``,
    a retry wrapper) counts as a request there. A chain that cannot be resolved is still
    flagged when its path is specific to one provider (``chat.completions.create``) and the
    module imports that provider.

    Under ``agentfuse lint`` a name imported from another module of the project (a client, a
    client factory, a base class's ``self.client``) is resolved there (the project index);
    under flake8 each file is checked alone. Known misses: LangChain models stored from an
    un-annotated argument and called without a prompt pipe; clients reached through
    ``getattr``; a guarded function also passed elsewhere as a callback (only call sites are
    counted); guards built in another module unless named in ``guard-names``.
    """

    code = "AF101"
    message = f"an LLM request is not inside an agentfuse guard; {GUARD_FIX}"
    triggers = LLM_TRIGGERS
    required_triggers = LLM_REQUEST_TRIGGERS
    trigger_word_options = LLM_OPTIONS

    VALID = (
        # guarded by a decorator bound to enforce()
        """
from openai import OpenAI
import agentfuse

guard = agentfuse.enforce("policy.yaml")
client = OpenAI()

@guard
def ask(prompt):
    return client.chat.completions.create(model="gpt-4o", messages=[])
""",
        # a with-block on the guard's step, async client
        """
from anthropic import AsyncAnthropic
from agentfuse import enforce

guard = enforce("policy.yaml")

class Agent:
    def __init__(self):
        self.client = AsyncAnthropic()

    async def run(self):
        async with guard.step(action="think"):
            return await self.client.messages.create(model="claude", max_tokens=10, messages=[])
""",
        # count_tokens is not a request, registry.create() is not a client
        """
import anthropic

client = anthropic.Anthropic()
client.messages.count_tokens(model="claude", messages=[])
registry.create()
""",
        # an unrelated class's messages.create, and API names in strings and docstrings
        """
class Mailbox:
    def __init__(self, store):
        self.messages = store

    def post(self):
        "Unlike client.chat.completions.create(), this posts a message."
        return self.messages.create(text="openai.ChatCompletion.create")
""",
        # a helper whose every call site is guarded
        """
import litellm
from agentfuse import enforce

guard = enforce("policy.yaml")

def complete(prompt):
    return litellm.completion(model="gpt-4o", messages=[])

def main():
    with guard.step():
        complete("hi")
""",
        # a lambda handed to guard.call
        """
import ollama
from agentfuse import enforce

guard = enforce("policy.yaml")
guard.call(lambda: ollama.chat(model="llama3", messages=[]))
""",
        # guard.instrument() gates every request of the process, framework runs included
        """
from openai import OpenAI
from langchain_openai import ChatOpenAI
import agentfuse

guard = agentfuse.enforce("policy.yaml")
guard.instrument()
OpenAI().chat.completions.create(model="gpt-4o", messages=[])
ChatOpenAI(model="gpt-4o").invoke("hi")
""",
        # a framework adapter built with a guard instruments it
        """
from agents import Agent, Runner
from agentfuse import enforce
from agentfuse.integrations.openai_agents import AgentsFuse

fuse = AgentsFuse(enforce("policy.yaml"))
Runner.run_sync(Agent(name="a"), "hello")
""",
        *examples.RESOLUTION_VALID,
    )
    INVALID = (
        """
from openai import OpenAI

client = OpenAI()
client.chat.completions.create(model="gpt-4o", messages=[])  # expect: AF101
""",
        """
from openai import OpenAI as O

def ask():
    return O().responses.create(model="gpt-4o", input="hi")  # expect: AF101
""",
        """
import anthropic

class Agent:
    async def run(self):
        return await self.client.messages.create(model="claude", max_tokens=1, messages=[])  # expect: AF101

    def __init__(self):
        self.client = anthropic.AsyncAnthropic()
""",
        """
import litellm

def main():
    litellm.completion(model="gpt-4o", messages=[])  # expect: AF101
""",
        """
import subprocess

subprocess.run(["claude", "-p", "summarise the repo"])  # expect: AF101
""",
        """
from agents import Agent, Runner

result = Runner.run_sync(Agent(name="a"), "hello")  # expect: AF101
""",
        # a guard that is created but not used around this call
        """
from langchain_openai import ChatOpenAI
from agentfuse import enforce

guard = enforce("policy.yaml")
llm = ChatOpenAI(model="gpt-4o")
llm.invoke("hi")  # expect: AF101
""",
        # instrument(client) gates that client only; an adapter needs a guard
        """
from openai import OpenAI
from agentfuse import enforce
from agentfuse.integrations.pydantic_ai import AgentfuseCapability

guard = enforce("policy.yaml")
guard.instrument(OpenAI())
capability = AgentfuseCapability(None)
OpenAI().chat.completions.create(model="gpt-4o", messages=[])  # expect: AF101
""",
        # instrument() on something that is not a guard
        """
import litellm
import logfire

logfire.instrument()
litellm.completion(model="gpt-4o", messages=[])  # expect: AF101
""",
        *examples.RESOLUTION_INVALID,
        *examples.CATALOGUE_INVALID,
        *examples.SHAPE_INVALID,
    )

    def check(self, analysis: ModuleAnalysis) -> None:
        for call in analysis.llm_calls:
            if not call.guarded:
                self.report(call.node, f"{call.api} is not inside an agentfuse guard; {GUARD_FIX}")


RULES: tuple[type[Rule], ...] = (UnguardedLlmCall,)
