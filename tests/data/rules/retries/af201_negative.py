# case: stop-after-attempt
from tenacity import retry, stop_after_attempt

@retry(stop=stop_after_attempt(3))
def fetch(): ...
# case: stop-held-in-variable
from tenacity import retry, stop_after_attempt, stop_after_delay

STOP = stop_after_attempt(5) | stop_after_delay(30)

@retry(stop=STOP)
def fetch(): ...
# case: stop-built-by-function
import tenacity

def make_stop():
    return tenacity.stop_after_delay(60)

@tenacity.retry(stop=make_stop())
def fetch(): ...
# case: kwargs-splat
import tenacity

def build(**options):
    return tenacity.Retrying(**options)
# case: args-splat
import tenacity

def build(*args):
    return tenacity.Retrying(*args)
# case: retrying-library-with-ceiling
from retrying import retry

@retry(stop_max_attempt_number=3)
def fetch(): ...
# case: backoff-with-ceiling
import backoff

@backoff.on_exception(backoff.expo, TimeoutError, max_tries=5)
def fetch(): ...
# case: local-function-named-retry
# This helper is not tenacity's.
def retry(fn):
    return fn

@retry
def fetch(): ...
# case: names-in-strings-and-docstrings
import tenacity

def fetch():
    """Wrapped with @retry and Retrying() in the old days; see tenacity docs."""
    return "@retry(stop=stop_never)"
# case: retry-with-inherits-stop
from tenacity import retry, stop_after_attempt, wait_fixed

@retry(stop=stop_after_attempt(3))
def fetch(): ...

slower = fetch.retry_with(wait=wait_fixed(10))
# case: retry-with-new-stop
from tenacity import retry, stop_after_attempt

@retry(stop=stop_after_attempt(3))
def fetch(): ...

patient = fetch.retry_with(stop=stop_after_attempt(10))
# case: retrying-object-with-deadline
from tenacity import Retrying, stop_after_delay

for attempt in Retrying(stop=stop_after_delay(10)):
    with attempt:
        call()
# case: async-retrying-with-stop
from tenacity import AsyncRetrying, stop_after_attempt

async def run():
    async for attempt in AsyncRetrying(stop=stop_after_attempt(3)):
        with attempt:
            await call()
# case: never-or-limit-is-a-limit
from tenacity import retry, stop_after_attempt, stop_never

@retry(stop=stop_never | stop_after_attempt(3))
def fetch(): ...
# case: stop-from-attribute
from tenacity import Retrying

class Client:
    def retryer(self):
        return Retrying(stop=self.stop)
# case: stop-from-parameter
from tenacity import Retrying

def retryer(stop):
    return Retrying(stop=stop)
# case: retry-strategy-is-not-a-retrier
import tenacity

predicate = tenacity.retry_if_exception_type(TimeoutError)
# case: langchain-with-retry-has-its-own-ceiling
import tenacity
from langchain_openai import ChatOpenAI

llm = ChatOpenAI().with_retry(stop_after_attempt=3)
# case: retry-keyword-is-not-a-call
from tenacity import retry, retry_if_result, stop_after_attempt

@retry(retry=retry_if_result(lambda value: value is None), stop=stop_after_attempt(4))
def poll(): ...
# case: parenthesised-combination
from tenacity import retry, stop_after_attempt, stop_after_delay

@retry(
    stop=(stop_after_attempt(3) | stop_after_delay(10)),
)
def fetch(): ...
# case: stop-all-of-limits
from tenacity import Retrying, stop_after_attempt, stop_after_delay, stop_all

retryer = Retrying(stop=stop_all(stop_after_attempt(3), stop_after_delay(5)))
# case: stop-any-with-a-limit
from tenacity import Retrying, stop_any, stop_after_attempt, stop_never

retryer = Retrying(stop=stop_any(stop_never, stop_after_attempt(3)))
# case: positional-stop-with-limit
import time
from tenacity import Retrying, stop_after_attempt

retryer = Retrying(time.sleep, stop_after_attempt(2))
# case: other-library-retry-no-tenacity
from my_helpers import retry

@retry
def fetch(): ...
# case: stop-variable-rebound-to-a-limit
from tenacity import Retrying, stop_after_attempt, stop_never

limit = stop_never
if production:
    limit = stop_after_attempt(5)
retryer = Retrying(stop=limit)
