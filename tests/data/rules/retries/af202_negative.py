# case: max-tries
import backoff

@backoff.on_exception(backoff.expo, TimeoutError, max_tries=5)
def fetch(): ...
# case: max-time
import backoff

@backoff.on_exception(backoff.expo, TimeoutError, max_time=30)
def fetch(): ...
# case: max-time-lambda
import backoff

@backoff.on_predicate(backoff.constant, max_time=lambda: settings.deadline)
def poll(): ...
# case: max-tries-callable
import backoff

def lookup_max_tries():
    return 3

@backoff.on_exception(backoff.expo, OSError, max_tries=lookup_max_tries)
def fetch(): ...
# case: max-tries-from-settings
import backoff

@backoff.on_exception(backoff.expo, OSError, max_tries=settings.MAX_TRIES)
def fetch(): ...
# case: max-tries-variable
import backoff

MAX_TRIES = 3

@backoff.on_exception(backoff.expo, OSError, max_tries=MAX_TRIES)
def fetch(): ...
# case: kwargs-splat
import backoff

def build(**limits):
    return backoff.on_exception(backoff.expo, OSError, **limits)
# case: tries-none-time-set
import backoff

@backoff.on_exception(backoff.expo, OSError, max_tries=None, max_time=60)
def fetch(): ...
# case: one-try
import backoff

@backoff.on_exception(backoff.expo, OSError, max_tries=1)
def fetch(): ...
# case: local-function-named-on-exception
# no backoff import here
def on_exception(*args):
    return lambda fn: fn

@on_exception(1, 2)
def fetch(): ...
# case: names-in-strings
import backoff

DOC = "use @backoff.on_exception(backoff.expo, Exception) with max_tries"
# case: wait-generator-alone
import backoff

delays = backoff.expo(base=2)
# case: tenacity-is-another-rule
from tenacity import retry, stop_after_attempt

@retry(stop=stop_after_attempt(3))
def fetch(): ...
# case: attribute-on-self-is-not-backoff
import backoff

class Policy:
    def wrap(self, fn):
        return self.backoff.on_exception(fn)
# case: limit-from-parameter
import backoff

def build(fn, limit):
    return backoff.on_exception(backoff.expo, OSError, max_tries=limit)(fn)
# case: max-time-from-class-attribute
import backoff

class Config:
    timeout = 30

@backoff.on_exception(backoff.expo, OSError, max_time=Config.timeout)
def fetch(): ...
# case: both-limits
import backoff

@backoff.on_predicate(backoff.fibo, max_tries=10, max_time=120)
def poll(): ...
# case: tries-from-environment
import os
import backoff

@backoff.on_exception(backoff.expo, OSError, max_tries=int(os.environ["TRIES"]))
def fetch(): ...
# case: alias-with-limit
from backoff import on_exception as retry_on, expo

@retry_on(expo, OSError, max_tries=4)
async def fetch(): ...
# case: call-form-with-limit
import backoff

fetch = backoff.on_predicate(backoff.expo, max_tries=3)(download)
# case: variable-rebound-to-a-number
import backoff

limit = None
if production:
    limit = 5

@backoff.on_exception(backoff.expo, OSError, max_tries=limit)
def fetch(): ...
