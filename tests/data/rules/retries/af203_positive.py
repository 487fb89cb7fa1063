# case: retrying-bare-decorator
from retrying import retry

@retry  # expect: AF203
def fetch(): ...
# case: retrying-empty-call
from retrying import retry

@retry()  # expect: AF203
def fetch(): ...
# case: retrying-wait-only
from retrying import retry

@retry(wait_exponential_multiplier=1000, wait_exponential_max=10000)  # expect: AF203
def fetch(): ...
# case: retrying-never-stop
from retrying import retry

@retry(stop="never_stop")  # expect: AF203
def fetch(): ...
# case: retrying-limit-none
import retrying

@retrying.retry(stop_max_attempt_number=None, retry_on_exception=is_transient)  # expect: AF203
def fetch(): ...
# case: retrying-object
from retrying import Retrying

result = Retrying(wait_fixed=500).call(fetch)  # expect: AF203
# case: retrying-alias
from retrying import retry as retry_forever

@retry_forever(wait_fixed=2000)  # expect: AF203
async def fetch(): ...
# case: retry-package-default-tries
from retry import retry

@retry()  # expect: AF203
def fetch(): ...
# case: retry-package-exceptions-delay
from retry import retry

@retry(ConnectionError, delay=1, backoff=2)  # expect: AF203
def fetch(): ...
# case: retry-package-negative-tries
from retry.api import retry

@retry(tries=-1, delay=2)  # expect: AF203
def fetch(): ...
# case: retry-package-retry-call
from retry.api import retry_call

result = retry_call(fetch, fargs=[url], delay=1)  # expect: AF203
# case: stamina-no-limits
import stamina

@stamina.retry(on=TimeoutError, attempts=None, timeout=None)  # expect: AF203
def fetch(): ...
# case: stamina-retry-context
import stamina

async def run():
    async for attempt in stamina.retry_context(on=OSError, attempts=None, timeout=None):  # expect: AF203
        with attempt:
            await call()
# case: stamina-caller
from stamina import RetryingCaller

caller = RetryingCaller(attempts=None, timeout=None)  # expect: AF203
# case: urllib3-total-none
from urllib3.util.retry import Retry

retries = Retry(total=None, backoff_factor=1)  # expect: AF203
# case: urllib3-total-none-positional
from urllib3 import Retry

retries = Retry(None)  # expect: AF203
# case: urllib3-only-connect-bounded
import urllib3

retries = urllib3.Retry(total=None, connect=5)  # expect: AF203
# case: requests-adapter-with-unbounded-retry
from requests.adapters import HTTPAdapter, Retry

adapter = HTTPAdapter(max_retries=Retry(total=None, read=2))  # expect: AF203
# case: google-api-core-no-timeout
from google.api_core import retry

policy = retry.Retry(predicate=retry.if_transient_error, timeout=None)  # expect: AF203
# case: google-api-core-async-no-timeout
from google.api_core.retry import AsyncRetry

policy = AsyncRetry(timeout=None)  # expect: AF203
# case: openai-huge-max-retries
from openai import OpenAI

client = OpenAI(max_retries=100)  # expect: AF203
# case: anthropic-infinite-max-retries
import anthropic

client = anthropic.AsyncAnthropic(max_retries=float("inf"))  # expect: AF203
# case: with-options-maxsize
import sys
from openai import OpenAI

client = OpenAI()
patient = client.with_options(max_retries=sys.maxsize)  # expect: AF203
# case: langchain-chat-model
from langchain_openai import ChatOpenAI

llm = ChatOpenAI(model="gpt-4o", max_retries=50)  # expect: AF203
# case: azure-power-of-ten
from openai import AzureOpenAI

client = AzureOpenAI(max_retries=10**6)  # expect: AF203
# case: max-retries-through-variable
from openai import AsyncOpenAI

MAX_RETRIES = 1000

class Agent:
    def __init__(self):
        self.client = AsyncOpenAI(max_retries=MAX_RETRIES)  # expect: AF203
