# case: bare-decorator
from tenacity import retry

@retry  # expect: AF201
def fetch(): ...
# case: bare-decorator-module-attribute
import tenacity

@tenacity.retry  # expect: AF201
def fetch(): ...
# case: bare-decorator-alias
from tenacity import retry as with_retries

@with_retries  # expect: AF201
def fetch(): ...
# case: module-alias-called
import tenacity as t

@t.retry(wait=t.wait_fixed(2))  # expect: AF201
async def fetch(): ...
# case: empty-call
from tenacity import retry

@retry()  # expect: AF201
def fetch(): ...
# case: multi-line-call-without-stop
from tenacity import retry, retry_if_exception_type, wait_exponential

@retry(  # expect: AF201
    wait=wait_exponential(multiplier=1, max=60),
    retry=retry_if_exception_type(TimeoutError),
    reraise=True,
)
def fetch(): ...
# case: stop-never
from tenacity import retry, stop_never

@retry(stop=stop_never)  # expect: AF201
def fetch(): ...
# case: stop-never-module-attribute
import tenacity

@tenacity.retry(stop=tenacity.stop_never, reraise=True)  # expect: AF201
def fetch(): ...
# case: stop-never-through-variable
from tenacity import retry, stop_never

FOREVER = stop_never

@retry(stop=FOREVER)  # expect: AF201
def fetch(): ...
# case: retrying-object-in-for
from tenacity import Retrying

for attempt in Retrying():  # expect: AF201
    with attempt:
        call()
# case: retrying-object-called
from tenacity import Retrying, wait_random

retryer = Retrying(wait=wait_random(0, 2))  # expect: AF201
result = retryer(call)
# case: async-retrying-async-for
from tenacity import AsyncRetrying, wait_fixed

async def run():
    async for attempt in AsyncRetrying(wait=wait_fixed(1)):  # expect: AF201
        with attempt:
            await call()
# case: async-retrying-from-submodule
from tenacity.asyncio import AsyncRetrying

async def run():
    async for attempt in AsyncRetrying(reraise=True):  # expect: AF201
        with attempt:
            await call()
# case: bare-call-form
from tenacity import retry

fetch = retry(download)  # expect: AF201
# case: called-then-applied
from tenacity import retry, wait_fixed

fetch = retry(wait=wait_fixed(3))(download)  # expect: AF201
# case: retry-with-stop-never
from tenacity import retry, stop_after_attempt, stop_never

@retry(stop=stop_after_attempt(3))
def fetch(): ...

patient_fetch = fetch.retry_with(stop=stop_never)  # expect: AF201
# case: stop-never-and-combination
from tenacity import retry, stop_after_attempt, stop_never

@retry(stop=stop_never & stop_after_attempt(3))  # expect: AF201
def fetch(): ...
# case: stop-none
from tenacity import Retrying

retryer = Retrying(stop=None)  # expect: AF201
# case: method-in-class
from tenacity import retry, wait_exponential

class Agent:
    @retry(wait=wait_exponential())  # expect: AF201
    async def ask(self, prompt):
        return await self.client.messages.create(messages=prompt)
# case: nested-function
from tenacity import retry

def make_fetcher(url):
    @retry  # expect: AF201
    def fetch():
        return get(url)
    return fetch
# case: star-import
from tenacity import *

@retry(wait=wait_fixed(1))  # expect: AF201
def fetch(): ...
# case: import-inside-function
def fetch_all(urls):
    from tenacity import retry as again

    @again(reraise=True)  # expect: AF201
    def fetch(url):
        return get(url)
    return [fetch(url) for url in urls]
# case: positional-stop-never
import time
from tenacity import Retrying, stop_never

retryer = Retrying(time.sleep, stop_never)  # expect: AF201
# case: stop-any-of-never
from tenacity import Retrying, stop_any, stop_never

retryer = Retrying(stop=stop_any(stop_never))  # expect: AF201
# case: annotated-variable-never
import tenacity

NO_LIMIT: tenacity.stop.stop_base = tenacity.stop_never

retryer = tenacity.Retrying(stop=NO_LIMIT)  # expect: AF201
# case: two-decorators-on-one-line-each
import functools
from tenacity import retry

@functools.lru_cache
@retry  # expect: AF201
def fetch(): ...
