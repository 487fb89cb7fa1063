# case: retrying-max-attempts
from retrying import retry

@retry(stop_max_attempt_number=3)
def fetch(): ...
# case: retrying-max-delay
from retrying import retry

@retry(stop_max_delay=10000, wait_fixed=500)
def fetch(): ...
# case: retrying-stop-func
from retrying import retry

def give_up(attempts, delay):
    return attempts > 3

@retry(stop_func=give_up)
def fetch(): ...
# case: retrying-named-stop-with-default-limit
from retrying import retry

@retry(stop="stop_after_attempt")
def fetch(): ...
# case: retry-package-tries
from retry import retry

@retry(ConnectionError, tries=3, delay=1)
def fetch(): ...
# case: retry-package-positional-tries
from retry import retry

@retry(ConnectionError, 4)
def fetch(): ...
# case: retry-call-with-tries
from retry.api import retry_call

result = retry_call(fetch, fargs=[url], tries=5)
# case: stamina-defaults
import stamina

@stamina.retry(on=TimeoutError)
def fetch(): ...
# case: stamina-attempts-none-keeps-timeout
import stamina

@stamina.retry(on=TimeoutError, attempts=None)
def fetch(): ...
# case: stamina-timeout-none-keeps-attempts
import stamina

@stamina.retry(on=TimeoutError, attempts=5, timeout=None)
def fetch(): ...
# case: urllib3-total
from urllib3.util.retry import Retry

retries = Retry(total=5, backoff_factor=0.5, status_forcelist=[502, 503])
# case: urllib3-disabled
from urllib3 import Retry

retries = Retry(total=False)
# case: urllib3-connect-and-read-bounded
from urllib3 import Retry

retries = Retry(total=None, connect=3, read=3)
# case: requests-adapter-integer
from requests.adapters import HTTPAdapter

adapter = HTTPAdapter(max_retries=3)
# case: google-timeout
from google.api_core import retry

policy = retry.Retry(timeout=300)
# case: google-deadline
from google.api_core.retry import Retry

policy = Retry(timeout=None, deadline=60)
# case: openai-small
from openai import OpenAI

client = OpenAI(max_retries=3)
# case: openai-at-threshold
from openai import OpenAI

client = OpenAI(max_retries=10)
# case: anthropic-default
from anthropic import Anthropic

client = Anthropic()
# case: with-options-small
from openai import OpenAI

client = OpenAI().with_options(max_retries=2)
# case: aiohttp-retry-has-a-ceiling
from aiohttp_retry import ExponentialRetry, RetryClient

client = RetryClient(retry_options=ExponentialRetry(attempts=3))
# case: langchain-with-retry
from langchain_openai import ChatOpenAI

llm = ChatOpenAI(max_retries=2).with_retry(stop_after_attempt=3)
# case: httpx-transport
import httpx

transport = httpx.HTTPTransport(retries=3)
# case: local-retry-function
def retry(fn):
    return fn

@retry
def fetch(): ...
# case: kwargs-splat
from urllib3 import Retry

def build(**options):
    return Retry(**options)
# case: max-retries-from-settings
from openai import OpenAI

client = OpenAI(max_retries=settings.MAX_RETRIES)
# case: other-class-named-retry
from my_http import Retry

policy = Retry(total=None)
