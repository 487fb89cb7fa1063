# case: on-exception-no-limit
import backoff

@backoff.on_exception(backoff.expo, TimeoutError)  # expect: AF202
def fetch(): ...
# case: on-predicate-no-limit
import backoff

@backoff.on_predicate(backoff.constant, interval=5)  # expect: AF202
def poll(): ...
# case: max-tries-none
import backoff

@backoff.on_exception(backoff.expo, OSError, max_tries=None)  # expect: AF202
def fetch(): ...
# case: max-time-none
import backoff

@backoff.on_exception(backoff.expo, OSError, max_time=None)  # expect: AF202
def fetch(): ...
# case: both-none
import backoff

@backoff.on_exception(backoff.expo, OSError, max_tries=None, max_time=None)  # expect: AF202
def fetch(): ...
# case: from-import-alias
from backoff import expo, on_exception as retry_on

@retry_on(expo, ConnectionError)  # expect: AF202
def fetch(): ...
# case: module-alias
import backoff as bo

@bo.on_exception(bo.fibo, ConnectionError, jitter=bo.full_jitter)  # expect: AF202
def fetch(): ...
# case: async-function
import backoff

@backoff.on_exception(backoff.expo, TimeoutError)  # expect: AF202
async def fetch(session):
    return await session.get("https://example.com")
# case: method-with-self-client
import backoff
from openai import OpenAI

class Writer:
    def __init__(self):
        self.client = OpenAI()

    @backoff.on_exception(backoff.expo, Exception)  # expect: AF202
    def write(self, prompt):
        return self.client.chat.completions.create(model="gpt-4o", messages=prompt)
# case: nested-function
import backoff

def make_fetcher(url):
    @backoff.on_exception(backoff.expo, OSError)  # expect: AF202
    def fetch():
        return get(url)
    return fetch
# case: call-form
import backoff

fetch = backoff.on_exception(backoff.expo, OSError)(download)  # expect: AF202
# case: zero-tries-never-matches
import backoff

@backoff.on_exception(backoff.expo, OSError, max_tries=0)  # expect: AF202
def fetch(): ...
# case: negative-tries
import backoff

@backoff.on_exception(backoff.expo, OSError, max_tries=-1)  # expect: AF202
def fetch(): ...
# case: variable-bound-to-none
import backoff

LIMIT = None

@backoff.on_exception(backoff.expo, OSError, max_tries=LIMIT)  # expect: AF202
def fetch(): ...
# case: multi-line-trailing-comma
import backoff

@backoff.on_exception(  # expect: AF202
    backoff.expo,
    (TimeoutError, ConnectionError),
    giveup=lambda error: False,
)
def fetch(): ...
# case: giveup-is-not-a-ceiling
import backoff

@backoff.on_exception(backoff.expo, OSError, giveup=is_fatal, on_backoff=log)  # expect: AF202
def fetch(): ...
# case: star-import
from backoff import *

@on_predicate(fibo)  # expect: AF202
def poll(): ...
# case: predicate-lambda
import backoff

@backoff.on_predicate(backoff.fibo, lambda result: result is None)  # expect: AF202
def poll(): ...
# case: from-import-both
from backoff import on_exception, on_predicate, expo

@on_exception(expo, OSError)  # expect: AF202
@on_predicate(expo)  # expect: AF202
def fetch(): ...
# case: import-inside-function
def build(fn):
    import backoff
    return backoff.on_exception(backoff.expo, OSError, max_time=None)(fn)  # expect: AF202
# case: class-body
import backoff

class Poller:
    @staticmethod
    @backoff.on_predicate(backoff.constant, interval=1)  # expect: AF202
    def wait_ready(): ...
