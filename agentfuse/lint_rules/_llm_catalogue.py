"""The catalogue of LLM request APIs, kept as data: one table per provider.

A :class:`ClientTable` says how a client object is built (``constructors``, qualified names
as resolved through the module's imports) and which dotted paths called on it send a
request (``methods``). Module-level request functions (``litellm.completion``) are listed in
``functions``. AF101-AF103 read these tables; nothing here is a regular expression run per
node: lookups are dict/set lookups on resolved names.

Extra APIs come from ``[tool.agentfuse] llm-apis`` (see :func:`tables_with_options`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

LLM_TRIGGERS: tuple[str, ...] = (
    r"\b(?:openai|anthropic|litellm|genai|generativeai|vertexai|mistralai|cohere|groq|together)\b",
    r"\b(?:cerebras|huggingface_hub|instructor|boto3|aioboto3|bedrock|ollama|langchain\w*|llama_index|crewai)\b",
    r"\b(?:zhipuai|dashscope|qianfan|fireworks|voyageai|claude_agent_sdk|claude_code_sdk|sagemaker)\b",
    r"azure\.ai\.inference|\binvoke_endpoint|\bbind_tools\(|\bwith_structured_output\(",
    r"\bfrom agents\b|\bimport agents\b|\bRunner\.run",
    r"\bclaude\b|\bcodex\b|\bgemini\b|\bollama run\b|[\"'\[]llm\b",
    r"\bchat\.completions\.|\bmessages\.(?:create|stream)\b|\bgenerate_content|\bconverse(?:_stream)?\(|\binvoke_model",
)
"""Words a file must contain to be worth parsing for LLM requests (the engine's pre-filter)."""

WRAPPER_SEGMENTS = frozenset({"with_raw_response", "with_streaming_response"})
MODEL_ONLY_METHODS = frozenset({"bind_tools", "with_structured_output"})
"""LangChain chat-model methods no other object has: what they return is a chat model."""
"""Path segments that wrap a request method without changing it (openai, anthropic)."""


@dataclasses.dataclass(frozen=True)
class ClientTable:
    """One kind of client object of one provider, and the request methods called on it."""

    provider: str
    modules: tuple[str, ...]
    """Import roots of the provider: a module importing one of them may use the client."""
    constructors: frozenset[str] = frozenset()
    """Qualified names whose call (or use as an annotation) gives such a client."""
    methods: frozenset[str] = frozenset()
    """Dotted paths, relative to the client, that send a request."""
    functions: frozenset[str] = frozenset()
    """Qualified module-level functions that send a request."""
    module_is_client: bool = False
    """The provider module itself works as a default client (``openai.chat.completions...``)."""
    passthrough: frozenset[str] = frozenset()
    """Methods returning a client of the same kind (``with_options``, ``bind_tools``)."""
    factories: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Dotted paths returning a client of another table (``chats.create`` -> a chat)."""
    distinctive: frozenset[str] = frozenset()
    """Paths specific enough to flag on a receiver that cannot be resolved, when the module
    imports the provider (``chat.completions.create`` on a client passed in un-annotated)."""
    constructor_modules: tuple[str, ...] = ()
    """Module prefixes whose classes build such clients when their names match
    ``constructor_prefixes`` or ``constructor_names`` (LangChain, LlamaIndex)."""
    constructor_prefixes: tuple[str, ...] = ()
    constructor_names: frozenset[str] = frozenset()
    generic_modules: tuple[str, ...] = ()
    """Of ``constructor_modules``, those holding more than models (``langchain_core``): there a
    prefix match counts only in a module path with a segment of ``model_segments``."""
    model_segments: frozenset[str] = frozenset()
    service: str | None = None
    """boto3: the client is ``<anything>.client("<service>")``."""

    def builds_client(self, qualified: str) -> bool:
        """True if calling ``qualified`` returns one of these clients."""
        if qualified in self.constructors:
            return True
        if not self.constructor_modules:
            return False
        module, _, name = qualified.rpartition(".")
        if not _in_modules(module, self.constructor_modules):
            return False
        if name in self.constructor_names:
            return True
        if not name.startswith(self.constructor_prefixes):
            return False
        return not _in_modules(module, self.generic_modules) or bool(self.model_segments & set(module.split(".")))

    def api_name(self, path: str) -> str:
        return f"{self.provider} {path}"


def _in_modules(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def _paths(*groups: Iterable[str]) -> frozenset[str]:
    return frozenset(path for group in groups for path in group)


OPENAI_METHODS = _paths(
    ("chat.completions.create", "chat.completions.parse", "chat.completions.stream"),
    ("beta.chat.completions.parse", "beta.chat.completions.stream"),
    ("responses.create", "responses.parse", "responses.stream"),
    ("completions.create", "embeddings.create"),
    ("images.generate", "images.edit", "images.create_variation"),
    ("audio.transcriptions.create", "audio.translations.create", "audio.speech.create"),
    ("beta.threads.runs.create", "beta.threads.runs.create_and_poll", "beta.threads.runs.stream"),
    ("beta.threads.create_and_run", "beta.threads.create_and_run_poll"),
)
OPENAI_LEGACY = frozenset(
    f"{kind}.{verb}" for kind in ("ChatCompletion", "Completion", "Embedding") for verb in ("create", "acreate")
) | {"Image.create"}
"""openai<1.0 resources, called on the module or held in a variable (``llm = openai.ChatCompletion``)."""
OPENAI_DISTINCTIVE = frozenset(path for path in OPENAI_METHODS if path.count(".") >= 2)
CLIENT_PASSTHROUGH = frozenset({"with_options", "copy"})

OPENAI = ClientTable(
    provider="openai",
    modules=("openai",),
    constructors=frozenset(
        f"openai.{name}"
        for name in ("OpenAI", "AsyncOpenAI", "AzureOpenAI", "AsyncAzureOpenAI", "Client", "AsyncClient")
    ),
    methods=OPENAI_METHODS | OPENAI_LEGACY,
    functions=frozenset(f"openai.{name}" for name in OPENAI_LEGACY),
    module_is_client=True,
    passthrough=CLIENT_PASSTHROUGH,
    distinctive=OPENAI_DISTINCTIVE,
)

ANTHROPIC = ClientTable(
    provider="anthropic",
    modules=("anthropic",),
    constructors=frozenset(
        f"anthropic.{name}"
        for name in (
            "Anthropic",
            "AsyncAnthropic",
            "AnthropicBedrock",
            "AsyncAnthropicBedrock",
            "AnthropicVertex",
            "AsyncAnthropicVertex",
            "Client",
            "AsyncClient",
        )
    ),
    methods=frozenset(
        {
            "messages.create",
            "messages.stream",
            "messages.parse",
            "messages.batches.create",
            "beta.messages.create",
            "beta.messages.stream",
            "beta.messages.parse",
            "beta.messages.tool_runner",
            "beta.messages.batches.create",
            "completions.create",
            "completion",
            "acompletion",
            "completion_stream",
            "acompletion_stream",
        }
    ),
    passthrough=CLIENT_PASSTHROUGH,
    distinctive=frozenset({"beta.messages.create", "beta.messages.stream", "beta.messages.parse"}),
)

LITELLM_CALLS = (
    "completion",
    "acompletion",
    "text_completion",
    "atext_completion",
    "embedding",
    "aembedding",
    "image_generation",
    "aimage_generation",
    "responses",
    "aresponses",
)
LITELLM = ClientTable(
    provider="litellm",
    modules=("litellm",),
    constructors=frozenset({"litellm.Router"}),
    methods=frozenset(LITELLM_CALLS),
    functions=frozenset(f"litellm.{name}" for name in (*LITELLM_CALLS, "batch_completion", "transcription")),
)

GOOGLE_GENAI_CHAT = ClientTable(
    provider="google-genai",
    modules=("google.genai",),
    methods=frozenset({"send_message", "send_message_stream"}),
)
GOOGLE_GENAI = ClientTable(
    provider="google-genai",
    modules=("google.genai",),
    constructors=frozenset({"google.genai.Client"}),
    methods=frozenset(
        prefix + name
        for prefix in ("models.", "aio.models.")
        for name in ("generate_content", "generate_content_stream", "generate_images", "embed_content")
    ),
    factories={"chats.create": "google-genai-chat", "aio.chats.create": "google-genai-chat"},
    distinctive=frozenset(
        {
            "models.generate_content",
            "models.generate_content_stream",
            "aio.models.generate_content",
            "aio.models.generate_content_stream",
        }
    ),
)

GENERATIVE_MODEL_METHODS = frozenset({"generate_content", "generate_content_async"})
GOOGLE_GENERATIVEAI_CHAT = ClientTable(
    provider="google.generativeai",
    modules=("google.generativeai", "vertexai"),
    methods=frozenset({"send_message", "send_message_async"}),
)
GOOGLE_GENERATIVEAI = ClientTable(
    provider="google.generativeai",
    modules=("google.generativeai", "vertexai"),
    constructors=frozenset(
        {
            "google.generativeai.GenerativeModel",
            "google.generativeai.generative_models.GenerativeModel",
            "vertexai.generative_models.GenerativeModel",
            "vertexai.preview.generative_models.GenerativeModel",
        }
    ),
    methods=GENERATIVE_MODEL_METHODS,
    functions=frozenset({"google.generativeai.generate_text", "google.generativeai.chat"}),
    factories={"start_chat": "google.generativeai-chat"},
    distinctive=GENERATIVE_MODEL_METHODS,
)

MISTRAL_PATHS = ("chat.complete", "chat.stream", "chat.parse", "fim.complete", "fim.stream", "agents.complete")
MISTRAL = ClientTable(
    provider="mistral",
    modules=("mistralai",),
    constructors=frozenset(
        {
            "mistralai.Mistral",
            "mistralai.client.Mistral",
            "mistralai.sdk.Mistral",
            "mistralai.client.MistralClient",
            "mistralai.async_client.MistralAsyncClient",
        }
    ),
    methods=_paths(
        MISTRAL_PATHS,
        (f"{path}_async" for path in MISTRAL_PATHS),
        ("agents.stream", "agents.stream_async", "embeddings.create", "embeddings.create_async"),
        ("chat", "chat_stream", "completion", "completion_stream", "embeddings"),
    ),
    distinctive=frozenset(f"{path}_async" for path in MISTRAL_PATHS if path.startswith("chat.")),
)

COHERE = ClientTable(
    provider="cohere",
    modules=("cohere",),
    constructors=frozenset(
        f"cohere.{name}" for name in ("Client", "AsyncClient", "ClientV2", "AsyncClientV2")
    ),
    methods=_paths(
        (prefix + name for prefix in ("", "v2.") for name in ("chat", "chat_stream", "embed", "rerank")),
        ("generate", "generate_stream", "summarize"),
    ),
    distinctive=frozenset({"chat", "chat_stream", "generate", "generate_stream"}),
)


def _openai_shaped(provider: str, module: str, *names: str) -> ClientTable:
    """A provider whose SDK copies OpenAI's client shape (Groq, Together, Cerebras)."""
    return ClientTable(
        provider=provider,
        modules=(module,),
        constructors=frozenset(f"{module}.{name}" for name in names),
        methods=OPENAI_METHODS,
        passthrough=CLIENT_PASSTHROUGH,
        distinctive=OPENAI_DISTINCTIVE,
    )


GROQ = _openai_shaped("groq", "groq", "Groq", "AsyncGroq")
TOGETHER = _openai_shaped("together", "together", "Together", "AsyncTogether")
CEREBRAS = _openai_shaped("cerebras", "cerebras.cloud.sdk", "Cerebras", "AsyncCerebras")
FIREWORKS = dataclasses.replace(
    _openai_shaped("fireworks", "fireworks.client", "Fireworks", "AsyncFireworks"),
    functions=frozenset(f"fireworks.client.{name}" for name in ("ChatCompletion.create", "ChatCompletion.acreate")),
)
ZHIPUAI = _openai_shaped("zhipuai", "zhipuai", "ZhipuAI")

DASHSCOPE = ClientTable(
    provider="dashscope",
    modules=("dashscope",),
    functions=frozenset(
        f"dashscope.{kind}.call"
        for kind in (
            "Generation",
            "AioGeneration",
            "aigc.generation.AioGeneration",
            "MultiModalConversation",
            "AioMultiModalConversation",
            "TextEmbedding",
            "Application",
        )
    ),
)
QIANFAN = ClientTable(
    provider="qianfan",
    modules=("qianfan",),
    constructors=frozenset(f"qianfan.{name}" for name in ("ChatCompletion", "Completion", "Embedding")),
    methods=frozenset({"do", "ado", "batch_do", "abatch_do"}),
)
AZURE_AI_INFERENCE = ClientTable(
    provider="azure-ai-inference",
    modules=("azure.ai.inference",),
    constructors=frozenset(
        f"azure.ai.inference.{aio}{name}"
        for aio in ("", "aio.")
        for name in ("ChatCompletionsClient", "EmbeddingsClient")
    ),
    methods=frozenset({"complete", "embed"}),
)
VOYAGE = ClientTable(
    provider="voyageai",
    modules=("voyageai",),
    constructors=frozenset({"voyageai.Client", "voyageai.AsyncClient"}),
    methods=frozenset({"embed", "rerank", "multimodal_embed", "contextualized_embed"}),
)
CLAUDE_AGENT_SDK = ClientTable(
    provider="claude-agent-sdk",
    modules=("claude_agent_sdk", "claude_code_sdk"),
    constructors=frozenset(f"{m}.ClaudeSDKClient" for m in ("claude_agent_sdk", "claude_code_sdk")),
    methods=frozenset({"query"}),
    functions=frozenset(f"{m}.query" for m in ("claude_agent_sdk", "claude_code_sdk")),
)

HUGGINGFACE = ClientTable(
    provider="huggingface_hub",
    modules=("huggingface_hub",),
    constructors=frozenset({"huggingface_hub.InferenceClient", "huggingface_hub.AsyncInferenceClient"}),
    methods=frozenset({"chat_completion", "text_generation", "chat.completions.create"}),
    distinctive=frozenset({"chat_completion", "text_generation", "chat.completions.create"}),
)

INSTRUCTOR = ClientTable(
    provider="instructor",
    modules=("instructor",),
    constructors=frozenset(
        f"instructor.{name}"
        for name in ("from_openai", "from_anthropic", "from_litellm", "from_provider", "patch")
    ),
    methods=_paths(
        OPENAI_METHODS,
        ("messages.create", "create", "create_with_completion", "create_partial", "create_iterable"),
        ("chat.completions.create_with_completion", "chat.completions.create_partial"),
    ),
)

BEDROCK_METHODS = frozenset(
    {
        "invoke_model",
        "invoke_model_with_response_stream",
        "invoke_model_with_bidirectional_stream",
        "converse",
        "converse_stream",
    }
)
BEDROCK = ClientTable(
    provider="bedrock-runtime",
    modules=("boto3", "aioboto3", "botocore"),
    methods=BEDROCK_METHODS,
    distinctive=BEDROCK_METHODS,
    service="bedrock-runtime",
)
BEDROCK_AGENT = ClientTable(
    provider="bedrock-agent-runtime",
    modules=("boto3", "aioboto3", "botocore"),
    methods=frozenset({"invoke_agent", "retrieve_and_generate", "retrieve_and_generate_stream"}),
    service="bedrock-agent-runtime",
)
SAGEMAKER = ClientTable(
    provider="sagemaker-runtime",
    modules=("boto3", "aioboto3", "botocore"),
    methods=frozenset({"invoke_endpoint", "invoke_endpoint_with_response_stream", "invoke_endpoint_async"}),
    service="sagemaker-runtime",
)
"""A SageMaker endpoint may serve any model, but in agent code it serves an LLM (LangChain's
``SagemakerEndpoint``, LlamaIndex's): a paid request per call, so it counts as one."""

OLLAMA_CALLS = ("chat", "generate", "embed", "embeddings")
OLLAMA = ClientTable(
    provider="ollama",
    modules=("ollama",),
    constructors=frozenset({"ollama.Client", "ollama.AsyncClient"}),
    methods=frozenset(OLLAMA_CALLS),
    functions=frozenset(f"ollama.{name}" for name in OLLAMA_CALLS),
)

LANGCHAIN = ClientTable(
    provider="langchain",
    modules=("langchain",),
    methods=frozenset(
        {
            "invoke",
            "ainvoke",
            "stream",
            "astream",
            "astream_events",
            "batch",
            "abatch",
            "predict",
            "apredict",
            "predict_messages",
            "generate",
            "agenerate",
            "generate_prompt",
            "agenerate_prompt",
            "run",
            "arun",
            "apredict_messages",
        }
    ),
    passthrough=frozenset(
        {"with_structured_output", "bind_tools", "bind", "with_retry", "with_fallbacks", "with_config"}
    ),
    constructor_modules=(
        "langchain",
        "langchain_core",
        "langgraph.prebuilt",
        "langchain_openai",
        "langchain_anthropic",
        "langchain_community",
        "langchain_google_genai",
        "langchain_google_vertexai",
        "langchain_aws",
        "langchain_ollama",
        "langchain_mistralai",
        "langchain_groq",
        "langchain_together",
        "langchain_cohere",
        "langchain_fireworks",
        "langchain_huggingface",
        "langchain_deepseek",
        "langchain_xai",
    ),
    constructor_prefixes=("Chat", "AzureChat"),
    generic_modules=("langchain", "langchain_core", "langchain_community"),
    model_segments=frozenset({"chat_models", "llms"}),
    constructor_names=frozenset(
        {
            "init_chat_model",
            "LLMChain",
            "ConversationChain",
            "BaseChatModel",
            "BaseLanguageModel",
            "BaseLLM",
            "create_react_agent",
            "create_agent",
            "AgentExecutor",
            "OpenAI",
            "AzureOpenAI",
            "Ollama",
            "OllamaLLM",
            "Anthropic",
            "VertexAI",
            "GoogleGenerativeAI",
            "HuggingFaceEndpoint",
            "Bedrock",
            "BedrockLLM",
            "Together",
            "Fireworks",
            "Cohere",
            "LlamaCpp",
        }
    ),
)

LLAMA_INDEX = ClientTable(
    provider="llama_index",
    modules=("llama_index",),
    methods=frozenset(
        {
            "complete",
            "acomplete",
            "chat",
            "achat",
            "stream_complete",
            "astream_complete",
            "stream_chat",
            "astream_chat",
            "predict",
            "apredict",
            "structured_predict",
            "astructured_predict",
        }
    ),
    constructors=frozenset(
        {"llama_index.core.llms.LLM", "llama_index.core.llms.llm.LLM", "llama_index.core.base.llms.base.BaseLLM"}
    ),
    constructor_modules=("llama_index.llms",),
    constructor_prefixes=("",),
)

OPENAI_AGENTS = ClientTable(
    provider="openai-agents",
    modules=("agents",),
    functions=frozenset({"agents.Runner.run", "agents.Runner.run_sync", "agents.Runner.run_streamed"}),
)

CREWAI = ClientTable(
    provider="crewai",
    modules=("crewai",),
    constructors=frozenset(
        {"crewai.Crew", "crewai.crew.Crew", "crewai.Agent", "crewai.agent.Agent", "crewai.agent.core.Agent",
         "crewai.LLM", "crewai.llm.LLM"}
    ),
    methods=frozenset(
        {"kickoff", "kickoff_async", "akickoff", "kickoff_for_each", "kickoff_for_each_async", "akickoff_for_each",
         "call", "acall"}
    ),
)
"""A crew's (or an agent's) kickoff runs its agents' model calls; ``LLM.call`` is one."""

TABLES: tuple[ClientTable, ...] = (
    OPENAI,
    ANTHROPIC,
    LITELLM,
    GOOGLE_GENAI,
    GOOGLE_GENAI_CHAT,
    GOOGLE_GENERATIVEAI,
    GOOGLE_GENERATIVEAI_CHAT,
    MISTRAL,
    COHERE,
    GROQ,
    TOGETHER,
    CEREBRAS,
    FIREWORKS,
    ZHIPUAI,
    DASHSCOPE,
    QIANFAN,
    AZURE_AI_INFERENCE,
    VOYAGE,
    CLAUDE_AGENT_SDK,
    HUGGINGFACE,
    INSTRUCTOR,
    BEDROCK,
    BEDROCK_AGENT,
    SAGEMAKER,
    OLLAMA,
    LANGCHAIN,
    LLAMA_INDEX,
    OPENAI_AGENTS,
    CREWAI,
)
TABLE_NAMES: Mapping[str, ClientTable] = {
    "google-genai-chat": GOOGLE_GENAI_CHAT,
    "google.generativeai-chat": GOOGLE_GENERATIVEAI_CHAT,
}


@dataclasses.dataclass(frozen=True)
class Shape:
    """A request's call shape, specific enough to flag when the receiver cannot be resolved."""

    provider: str
    modules: tuple[str, ...]
    """A ``**kwargs`` call counts as having ``keywords`` only in a module importing these."""
    keywords: frozenset[str] = frozenset()
    """Keyword arguments the call must pass (``messages.create`` is also Twilio's)."""


def _shapes(shape: Shape, *paths: str) -> dict[str, Shape]:
    return {path: shape for path in paths}


_OPENAI_LIKE = ("openai", "groq", "together", "cerebras", "fireworks", "zhipuai", "huggingface_hub")
FALLBACK_SHAPES: Mapping[str, Shape] = MappingProxyType(
    {
        **_shapes(
            Shape("openai-compatible", _OPENAI_LIKE),
            "chat.completions.create",
            "chat.completions.parse",
            "chat.completions.stream",
            "chat.completions.acreate",
        ),
        **_shapes(Shape("openai", ("openai",), frozenset({"model"})), "responses.create", "responses.stream"),
        **_shapes(Shape("openai-compatible", _OPENAI_LIKE, frozenset({"model", "prompt"})), "completions.create"),
        **_shapes(Shape("openai-compatible", _OPENAI_LIKE, frozenset({"model", "input"})), "embeddings.create"),
        **_shapes(
            Shape("anthropic", ("anthropic",), frozenset({"model", "max_tokens"})),
            "messages.create",
            "messages.stream",
        ),
        **_shapes(Shape("anthropic", ("anthropic",)), "beta.messages.create", "beta.messages.stream"),
        **_shapes(
            Shape("google-genai", ("google.genai",)),
            "models.generate_content",
            "models.generate_content_stream",
        ),
        **_shapes(
            Shape("bedrock-runtime", ("boto3", "aioboto3", "botocore"), frozenset({"modelId"})),
            "converse",
            "converse_stream",
            "invoke_model",
            "invoke_model_with_response_stream",
        ),
        **_shapes(
            Shape("google-genai", ("google.genai",), frozenset({"model"})),
            "models.embed_content",
            "aio.models.embed_content",
        ),
        **_shapes(
            Shape("sagemaker-runtime", ("boto3", "aioboto3", "botocore")),
            "invoke_endpoint",
            "invoke_endpoint_with_response_stream",
        ),
        **_shapes(Shape("bedrock-runtime", ("boto3",)), "invoke_model_with_bidirectional_stream"),
        **_shapes(
            Shape("mistral", ("mistralai",), frozenset({"model", "messages"})),
            "chat.complete",
            "chat.complete_async",
            "chat.stream_async",
        ),
    }
)
"""Attribute-chain endings that are requests whatever the receiver (the API-shape fallback)."""


SUBPROCESS_FUNCTIONS = frozenset(
    {
        "subprocess.run",
        "subprocess.call",
        "subprocess.check_call",
        "subprocess.check_output",
        "subprocess.Popen",
        "subprocess.getoutput",
        "subprocess.getstatusoutput",
        "os.system",
        "os.popen",
        "asyncio.create_subprocess_exec",
        "asyncio.create_subprocess_shell",
        "pexpect.spawn",
        "pexpect.run",
        "anyio.open_process",
        "anyio.run_process",
        "trio.run_process",
    }
)
"""Functions that start a process; their command is checked against :data:`LLM_CLIS`."""
ARGV_FUNCTIONS = frozenset({"asyncio.create_subprocess_exec"})
"""Functions taking the command as separate positional arguments."""
LLM_CLIS: Mapping[str, str | None] = {"claude": None, "llm": None, "codex": None, "gemini": None, "ollama": "run"}
"""CLI name -> the sub-command that makes it send a prompt (None: any sub-command)."""
CLI_INFO_FLAGS = frozenset({"--version", "-v", "-V", "--help", "-h", "help"})
"""A CLI run with only these asks for information and sends no prompt."""
CLI_HOUSEKEEPING: Mapping[str, frozenset[str]] = {
    "llm": frozenset({"models", "keys", "plugins", "install", "uninstall", "logs", "templates", "aliases"}),
    "claude": frozenset({"mcp", "config", "update", "doctor", "install", "migrate-installer", "setup-token"}),
    "codex": frozenset({"login", "logout", "mcp", "completion"}),
    "gemini": frozenset({"mcp", "extensions"}),
}
"""Sub-commands of an LLM CLI that manage it and send no prompt."""

ENFORCE_NAMES = frozenset({"enforce"})
GUARD_CLASS_NAMES = frozenset({"Guard"})
GUARD_SCOPE_METHODS = frozenset({"step", "child"})
"""Methods of a guard that return something usable as a guard (decorator or context)."""
GUARD_CALL_METHODS = frozenset({"call", "acall"})
"""Methods of a guard that run the callable handed to them under the guard."""


@dataclasses.dataclass(frozen=True)
class Catalogue:
    """All tables plus the indexes built from them, for one file check."""

    tables: tuple[ClientTable, ...]
    functions: Mapping[str, tuple[ClientTable, str]]
    """Qualified function name -> (table, API path shown in messages)."""
    call_names: frozenset[str]
    """Last segment of every request method/function: the cheap per-call pre-check."""
    by_name: Mapping[str, ClientTable]
    module_roots: frozenset[str]

    def function(self, qualified: str) -> tuple[ClientTable, str] | None:
        """The request function ``qualified`` names, also through a re-export of the provider
        module (``from aider.llm import litellm`` then ``litellm.completion``)."""
        hit = self.functions.get(qualified)
        if hit is not None or "." not in qualified:
            return hit
        parts = qualified.split(".")
        for start in range(1, len(parts) - 1):
            if parts[start] in self.module_roots:
                hit = self.functions.get(".".join(parts[start:]))
                if hit is not None:
                    return hit
        return None

    @classmethod
    def build(cls, tables: Sequence[ClientTable], named: Mapping[str, ClientTable]) -> Catalogue:
        functions: dict[str, tuple[ClientTable, str]] = {}
        names: set[str] = {qualified.rpartition(".")[2] for qualified in SUBPROCESS_FUNCTIONS}
        names.update(ENFORCE_NAMES | GUARD_CALL_METHODS)
        for table in tables:
            for qualified in table.functions:
                module = next((m for m in table.modules if qualified.startswith(m + ".")), "")
                functions[qualified] = (table, qualified[len(module) + 1 :] if module else qualified)
            if table.module_is_client:
                for module in table.modules:
                    for path in table.methods:
                        functions.setdefault(f"{module}.{path}", (table, path))
            names.update(path.rpartition(".")[2] for path in table.methods | table.functions)
        names.update(path.rpartition(".")[2] for path in FALLBACK_SHAPES)
        roots = frozenset(module for table in tables for module in table.modules if "." not in module)
        return cls(tuple(tables), MappingProxyType(functions), frozenset(names), MappingProxyType(dict(named)), roots)


def tables_with_options(options: Mapping[str, Any]) -> Catalogue:
    """The catalogue, extended by ``[tool.agentfuse] llm-apis``.

    Each entry is a dotted name: ``mylib.ask`` (a request function) or
    ``mylib.Client().chat.send`` (calling ``chat.send`` on an object built by
    ``mylib.Client(...)``).
    """
    entries = string_list(options.get("llm-apis"))
    if not entries:
        return DEFAULT_CATALOGUE
    extra: list[ClientTable] = []
    for entry in entries:
        constructor, marker, path = entry.partition("().")
        if marker and constructor and path:
            extra.append(
                ClientTable(
                    provider=constructor.partition(".")[0],
                    modules=(constructor.partition(".")[0],),
                    constructors=frozenset({constructor}),
                    methods=frozenset({path}),
                )
            )
        elif "." in entry:
            extra.append(
                ClientTable(provider=entry.partition(".")[0], modules=(), functions=frozenset({entry}))
            )
    return Catalogue.build((*TABLES, *extra), TABLE_NAMES)


DEFAULT_CATALOGUE = Catalogue.build(TABLES, TABLE_NAMES)
"""The catalogue without options: immutable, built once at import."""


def string_list(value: Any) -> list[str]:
    """An option that may be one string or a list of strings, as a list (others ignored)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [item for item in value if isinstance(item, str)]
    return []


def llm_module_roots() -> frozenset[str]:
    """Import roots of every provider SDK (for rules that only need a cheap hint)."""
    return frozenset(module for table in TABLES for module in table.modules)


def client_constructors() -> frozenset[str]:
    """Qualified names of every catalogued client class (for rules that look at clients)."""
    return frozenset(name for table in TABLES for name in table.constructors)
