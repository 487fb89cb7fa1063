"""AF101 examples shaped like real agent code: where clients come from, the catalogue, the
API-shape fallback and the look-alikes that must stay clean. The comment above each names
the kind of project the shape was taken from. Cross-module cases need a project on disk and
live in tests/test_rule_llm_project.py."""

from __future__ import annotations

RESOLUTION_INVALID: tuple[str, ...] = (
    # a router trying each provider's client in turn
    """
from anthropic import Anthropic
from openai import OpenAI

for client in [OpenAI(), OpenAI(base_url="http://localhost:8000/v1")]:
    client.chat.completions.create(model="gpt-4o", messages=[])  # expect: AF101
""",
    # a RAG library: the client is a cached_property, messages go through a property
    """
from functools import cached_property
from openai import AsyncOpenAI

class Embedder:
    @cached_property
    def client(self):
        return AsyncOpenAI(base_url=self.base_url)

    @property
    def completions(self):
        return self.client.chat.completions

    async def answer(self, question):
        return await self.completions.create(model=self.model, messages=[])  # expect: AF101
""",
    # a multi-agent framework: a pydantic model holding the chat model as a typed field
    """
from langchain_core.language_models import BaseChatModel
from pydantic import BaseModel

class Crew(BaseModel):
    manager_llm: BaseChatModel

    def kickoff(self, task):
        return self.manager_llm.invoke(task.description)  # expect: AF101
""",
    # a coding assistant: partial() over litellm, and a sync/async alias picked at run time
    """
import functools
import litellm
from litellm import acompletion, completion

send = functools.partial(litellm.completion, model="gpt-4o", temperature=0)
send(messages=[])  # expect: AF101

async def ask(messages, stream):
    fn = acompletion if stream else completion
    return await fn(model="gpt-4o", messages=messages)  # expect: AF101
""",
    # a research agent: a module-level factory and a setup() method fill the client
    """
from openai import AsyncOpenAI

def get_client(api_key=None):
    return AsyncOpenAI(api_key=api_key)

class Researcher:
    def setup(self):
        self.llm = get_client()

    async def plan(self, query):
        return await self.llm.chat.completions.create(model="gpt-4o", messages=[])  # expect: AF101
""",
    # a data-analysis agent: the SDK imported lazily through an optional-dependency helper
    """
from pandasai.helpers import import_optional_dependency

class OpenAILLM:
    def __init__(self, api_key):
        openai = import_optional_dependency("openai")
        self.client = openai.OpenAI(api_key=api_key)

    def call(self, prompt):
        return self.client.chat.completions.create(model="gpt-4o", messages=[])  # expect: AF101
""",
    # an LLM integrations package: importlib.import_module on the provider module
    """
import importlib

anthropic = importlib.import_module("anthropic")
client = anthropic.Anthropic()
client.messages.create(model="claude-sonnet-4", max_tokens=512, messages=[])  # expect: AF101
""",
    # a chat UI backend: the client's type is only in a string annotation
    """
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from openai import AsyncOpenAI

class Backend:
    client: "AsyncOpenAI | None" = None

    async def reply(self, history):
        return await self.client.responses.create(model="gpt-4.1", input=history)  # expect: AF101
""",
)

CATALOGUE_INVALID: tuple[str, ...] = (
    # a CrewAI crew: kickoff runs its agents' model calls; a fuse built without a guard guards nothing
    """
from crewai import Agent, Crew, LLM, Task
from agentfuse.integrations.crewai import CrewFuse

fuse = CrewFuse(None)
llm = LLM(model="gpt-4o")
crew = Crew(agents=[Agent(role="a", goal="g", backstory="b", llm=llm)], tasks=[])
crew.kickoff(inputs={"topic": "x"})  # expect: AF101
llm.call("hello")  # expect: AF101
""",
    # LlamaIndex-style integrations: Mistral 1.x client with *_async, Cohere v2, google-genai aio
    """
from mistralai import Mistral
import cohere
from google import genai

mistral = Mistral(api_key="k")
async def run():
    await mistral.chat.complete_async(model="mistral-large", messages=[])  # expect: AF101
    await mistral.embeddings.create_async(model="mistral-embed", inputs=["x"])  # expect: AF101

co = cohere.ClientV2()
co.chat(model="command-r-plus", messages=[])  # expect: AF101
gclient = genai.Client()
async def gen():
    await gclient.aio.models.generate_content(model="gemini-2.5-flash", contents="hi")  # expect: AF101
""",
    # an AWS agent toolkit: Bedrock clients from a boto3 session, held in attributes, and aioboto3
    """
import aioboto3
import boto3

class BedrockChat:
    def __init__(self, region):
        session = boto3.Session(region_name=region)
        self.runtime = session.client(service_name="bedrock-runtime")
        self.endpoints = session.client("sagemaker-runtime")

    def chat(self, messages):
        return self.runtime.converse(modelId="anthropic.claude-3", messages=messages)  # expect: AF101

    def raw(self, body):
        return self.endpoints.invoke_endpoint(EndpointName="llm", Body=body)  # expect: AF101

async def stream(body):
    async with aioboto3.Session().client("bedrock-runtime") as client:
        return await client.invoke_model_with_response_stream(modelId="m", body=body)  # expect: AF101
""",
    # Chinese-market agent frameworks: zhipuai, dashscope, qianfan; azure-ai-inference
    """
import dashscope
import qianfan
from zhipuai import ZhipuAI
from azure.ai.inference import ChatCompletionsClient

ZhipuAI(api_key="k").chat.completions.create(model="glm-4", messages=[])  # expect: AF101
dashscope.Generation.call(model="qwen-max", messages=[])  # expect: AF101
qianfan.ChatCompletion().do(model="ERNIE-4.0", messages=[])  # expect: AF101
ChatCompletionsClient(endpoint="e", credential=None).complete(messages=[])  # expect: AF101
""",
    # an openai<1.0 era agent: the resource held in a variable; anthropic streaming context
    """
import anthropic
import openai

llm = openai.ChatCompletion
llm.create(model="gpt-3.5-turbo", messages=[])  # expect: AF101

client = anthropic.Anthropic()
with client.messages.stream(model="claude", max_tokens=100, messages=[]) as stream:  # expect: AF101
    text = stream.get_final_text()
""",
    # a LangChain app: legacy LLMChain.run, generate, and an LCEL chain with the model in its pipe
    """
from langchain.chains import LLMChain
from langchain_core.output_parsers import StrOutputParser
from langchain_openai import ChatOpenAI

llm = ChatOpenAI(model="gpt-4o")
LLMChain(llm=llm, prompt=prompt).run(topic="x")  # expect: AF101
llm.generate([[message]])  # expect: AF101
(prompt | llm | StrOutputParser()).invoke({"topic": "x"})  # expect: AF101
""",
    # a coding-agent orchestrator: claude-agent-sdk, and CLIs found with shutil.which
    """
import asyncio
import shutil
import anyio
from claude_agent_sdk import query

async def main(prompt):
    async for message in query(prompt=prompt):  # expect: AF101
        print(message)
    claude = shutil.which("claude")
    proc = await asyncio.create_subprocess_exec(claude, "-p", prompt)  # expect: AF101
    await anyio.open_process(["gemini", "-p", prompt])  # expect: AF101
""",
)

SHAPE_INVALID: tuple[str, ...] = (
    # a scraping-graph library: the model comes from a config dict, the pipe starts with a prompt
    """
from langchain_core.prompts import PromptTemplate
from langchain_core.output_parsers import JsonOutputParser

class GenerateAnswerNode:
    def __init__(self, node_config):
        self.llm_model = node_config["llm_model"]

    def execute(self, question):
        prompt = PromptTemplate(template="{question}", input_variables=["question"])
        chain = prompt | self.llm_model | JsonOutputParser()
        return chain.invoke({"question": question})  # expect: AF101
""",
    # a research agent's tool loop: whatever bind_tools() is called on is a chat model
    """
async def call_with_tools(provider, tools, messages):
    llm_with_tools = provider.llm.bind_tools(tools)
    return await llm_with_tools.ainvoke(messages)  # expect: AF101
""",
    # LLM integration packages: embeddings and SageMaker endpoints on clients built elsewhere
    """
class Embeddings:
    def embed(self, texts):
        return self.client.models.embed_content(model=self.model, contents=texts)  # expect: AF101

class SagemakerLLM:
    def complete(self, body):
        return self._client.invoke_endpoint(EndpointName=self.endpoint, Body=body)  # expect: AF101
""",
    # an eval harness: the client arrives un-annotated or typed Any, from another package
    """
from typing import Any

def grade(client: Any, answer):
    return client.chat.completions.create(model="gpt-4o-mini", messages=[])  # expect: AF101

def judge(anthropic_client, answer):
    return anthropic_client.messages.create(model="claude", max_tokens=64, messages=[])  # expect: AF101

def embed(provider, texts):
    return provider.client.converse(modelId="amazon.nova-lite", messages=[])  # expect: AF101
""",
)

RESOLUTION_VALID: tuple[str, ...] = (
    # a test of a guard and its child run: the same step on each, in a loop over both
    """
from openai import OpenAI
from agentfuse import enforce

guard = enforce("policy.yaml")
child = guard.child(run_usd="0.10")
client = OpenAI()
for owner in (guard, child):
    with owner.step(action="ask"):
        client.chat.completions.create(model="gpt-4o", messages=[])
""",
    # a CrewAI crew built next to a CrewFuse: its agents' calls are gated under the guard
    """
from crewai import Agent, Crew, Task
import agentfuse
from agentfuse.integrations.crewai import CrewFuse

fuse = CrewFuse(agentfuse.enforce("policy.yaml"))
crew = Crew(agents=[Agent(role="a", goal="g", backstory="b")], tasks=[])
crew.kickoff()
fuse.kickoff(crew)
""",
    # an SDK wrapper: the request method is looked at, never called
    """
import inspect
from openai import OpenAI

client = OpenAI()
is_async = inspect.iscoroutinefunction(client.chat.completions.create)
has_parse = hasattr(client.beta.chat.completions, "parse") and callable(client.chat.completions.create)
""",
    # a notifications tool: Twilio's messages.create has no model= or max_tokens=
    """
from twilio.rest import Client

def notify(to, body):
    Client().messages.create(body=body, from_="+1555", to=to)
""",
    # a guarded agent: the cached client and the partial are only called under the guard
    """
import functools
import litellm
from functools import cached_property
from openai import OpenAI
from agentfuse import enforce

guard = enforce("policy.yaml")
send = functools.partial(litellm.completion, model="gpt-4o")

class Agent:
    @cached_property
    def client(self):
        return OpenAI()

    @guard
    def step(self):
        send(messages=[])
        return self.client.chat.completions.create(model="gpt-4o", messages=[])
""",
    # a model registry: the provider module is imported lazily only to read its version;
    # the Bedrock control plane lists models, it sends no prompt
    """
import importlib
import boto3

version = importlib.import_module("openai").__version__
models = boto3.client("bedrock").list_foundation_models()
""",
    # a CLI wrapper: `claude --version` and `gemini mcp list` send no prompt
    """
import asyncio
import shutil

async def check():
    claude = shutil.which("claude")
    await asyncio.create_subprocess_exec(claude, "--version")
    await asyncio.create_subprocess_exec("gemini", "mcp", "list")
""",
    # a RAG pipeline: a retriever's invoke and a prompt piped only into a parser call no model
    """
from langchain_core.prompts import PromptTemplate
from langchain_core.output_parsers import StrOutputParser

def search(retriever, query):
    docs = retriever.invoke(query)
    preview = (PromptTemplate.from_template("{q}") | StrOutputParser()).invoke({"q": query})
    return docs, preview
""",
    # a chat app's own store: messages.create(...) without model= and max_tokens= saves a row
    """
class ChatStore:
    def __init__(self, db):
        self.messages = db.table("messages")

    def save(self, role, text):
        return self.messages.create(role=role, content=text)
""",
)
