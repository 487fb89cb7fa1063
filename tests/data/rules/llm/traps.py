"""Look-alikes that are not LLM requests."""

from openai import OpenAI

DOC = "call client.chat.completions.create(model=...) inside a guard"


def explain() -> str:
    """Example: ``openai.chat.completions.create(...)`` and ``anthropic.messages.create``."""
    return "litellm.completion(model='gpt-4o')"


class Registry:
    def create(self) -> None:
        pass


registry = Registry()
registry.create()  # clean: AF101


class Chat:
    def create(self) -> None:
        pass


class Local:
    def __init__(self) -> None:
        self.chat = Chat()
        self.completions = Chat()

    def go(self) -> None:
        self.chat.create()  # clean: AF101
        self.completions.create()  # clean: AF101


def annotated_other(client: Registry) -> None:
    client.create()  # clean: AF101


def not_a_client() -> None:
    client = Registry()
    client.create()  # clean: AF101


def completion(x: int) -> int:
    return x


completion(1)  # clean: AF101
print(OpenAI.__name__)  # clean: AF101
