"""LiteLLM, Google, Mistral, Cohere, Groq, Together, Bedrock, Ollama, LangChain, Agents SDK."""

import boto3
import cohere
import google.generativeai as palm
import litellm
import ollama
from agents import Agent, Runner
from google import genai
from groq import AsyncGroq
from langchain_anthropic import ChatAnthropic
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from litellm import acompletion as ac
from mistralai import Mistral
from together import Together

litellm.completion(model="gpt-4o", messages=[])  # expect: AF101
litellm.embedding(model="text-embedding-3-small", input=["x"])  # expect: AF101
litellm.token_counter(model="gpt-4o", text="x")  # clean: AF101
router = litellm.Router(model_list=[])
router.completion(model="gpt-4o", messages=[])  # expect: AF101

gclient = genai.Client()
gclient.models.generate_content(model="gemini-2.0-flash", contents="hi")  # expect: AF101
gclient.models.count_tokens(model="gemini-2.0-flash", contents="hi")  # clean: AF101
session = gclient.chats.create(model="gemini-2.0-flash")
session.send_message("hi")  # expect: AF101

model = palm.GenerativeModel("gemini-pro")
model.generate_content("hi")  # expect: AF101
model.count_tokens("hi")  # clean: AF101

mistral = Mistral(api_key="k")
mistral.chat.complete(model="mistral-small", messages=[])  # expect: AF101
mistral.models.list()  # clean: AF101

co = cohere.ClientV2()
co.chat(model="command-r", messages=[])  # expect: AF101
co.tokenize(text="hi", model="command-r")  # clean: AF101

Together().chat.completions.create(model="m", messages=[])  # expect: AF101

bedrock = boto3.client("bedrock-runtime", region_name="us-east-1")
bedrock.converse(modelId="anthropic.claude", messages=[])  # expect: AF101
bedrock.invoke_model(modelId="m", body=b"{}")  # expect: AF101
s3 = boto3.client("s3")
s3.invoke_model(Bucket="b")  # clean: AF101
boto3.Session().client(service_name="bedrock-runtime").converse_stream(modelId="m", messages=[])  # expect: AF101


class BedrockLLM:
    """A provider wrapper (metagpt's shape): its own method shares the boto3 method's name."""

    def __init__(self) -> None:
        self.client = boto3.client("bedrock-runtime")

    def invoke_model(self, body: str) -> object:
        return self.client.invoke_model(modelId="m", body=body)  # expect: AF101

    def completion(self, body: str) -> object:
        return self.invoke_model(body)  # clean: AF101

ollama.chat(model="llama3", messages=[])  # expect: AF101
ollama.Client(host="http://localhost:11434").generate(model="llama3", prompt="hi")  # expect: AF101
ollama.list()  # clean: AF101

llm = ChatAnthropic(model="claude-3-5-sonnet-latest")
llm.invoke("hi")  # expect: AF101
structured = llm.with_structured_output(dict)
structured.invoke("hi")  # expect: AF101
chain = ChatPromptTemplate.from_template("{q}") | llm | StrOutputParser()
chain.invoke({"q": "hi"})  # expect: AF101
ChatPromptTemplate.from_template("{q}").invoke({"q": "hi"})  # clean: AF101

Runner.run_sync(Agent(name="a"), "hello")  # expect: AF101


async def async_calls() -> None:
    await ac(model="gpt-4o", messages=[])  # expect: AF101
    await AsyncGroq().chat.completions.create(model="llama3", messages=[])  # expect: AF101
    await gclient.aio.models.generate_content(model="gemini-2.0-flash", contents="hi")  # expect: AF101
    await llm.ainvoke("hi")  # expect: AF101
    await Runner.run(Agent(name="a"), "hello")  # expect: AF101
    await ollama.AsyncClient().chat(model="llama3", messages=[])  # expect: AF101


def reexported_module() -> None:
    from myapp.lazy import litellm as lazy_litellm

    lazy_litellm.completion(model="gpt-4o", messages=[])  # expect: AF101
    lazy_litellm.get_model_info("gpt-4o")  # clean: AF101


class HubModel:
    def __init__(self, client) -> None:
        import huggingface_hub  # noqa: F401

        self.client = client

    def ask(self) -> None:
        self.client.chat_completion(messages=[])  # expect: AF101


def make_client() -> "Mistral":
    return Mistral(api_key="k")


make_client().chat.complete(model="m", messages=[])  # expect: AF101
make_client().chat.stream_async  # clean: AF101


class Engineer:
    def _create_chat_model(self):
        if self:
            return None
        return ChatAnthropic(model="claude")

    def __init__(self) -> None:
        self.llm = self._create_chat_model()

    def next(self) -> None:
        self.llm.invoke([])  # expect: AF101
        self.llm.get_num_tokens("x")  # clean: AF101


def typed_langchain(model: "BaseChatModel", prompt: ChatPromptTemplate) -> None:
    from langchain_core.language_models import BaseChatModel  # noqa: F401
    from langgraph.prebuilt import create_react_agent

    model.invoke("hi")  # expect: AF101
    prompt.invoke({"q": "hi"})  # clean: AF101
    create_react_agent(model, tools=[]).invoke({"messages": []})  # expect: AF101


def langchain_look_alikes() -> None:
    from langchain.prompts import ChatPromptTemplate as Template
    from langchain_community.chat_models import ChatOllama

    Template(messages=[]).invoke({})  # clean: AF101
    ChatOllama(model="llama3").invoke("hi")  # expect: AF101
