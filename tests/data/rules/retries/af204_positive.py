# case: sleep-and-loop-again
import time

while True:  # expect: AF204
    try:
        result = fetch()
        break
    except TimeoutError:
        time.sleep(5)
# case: while-one
while 1:  # expect: AF204
    try:
        result = fetch()
        break
    except Exception:
        pass
# case: return-in-try-continue-in-except
def fetch_page(url):
    while True:  # expect: AF204
        try:
            return get(url)
        except ConnectionError:
            continue
# case: else-break
while True:  # expect: AF204
    try:
        result = fetch()
    except OSError:
        pass
    else:
        break
# case: llm-call-on-module-client
from openai import OpenAI

client = OpenAI()

def ask(prompt):
    while True:  # expect: AF204
        try:
            return client.chat.completions.create(model="gpt-4o", messages=prompt)
        except Exception:
            continue
# case: llm-call-on-self-client-async
import asyncio
from anthropic import AsyncAnthropic

class Writer:
    def __init__(self):
        self.client = AsyncAnthropic()

    async def write(self, prompt):
        while True:  # expect: AF204
            try:
                return await self.client.messages.create(model="claude", messages=prompt)
            except Exception:
                await asyncio.sleep(2)
# case: litellm-module-function
import litellm

def ask(messages):
    while True:  # expect: AF204
        try:
            response = litellm.completion(model="gpt-4o", messages=messages)
            return response
        except litellm.RateLimitError:
            continue
# case: continue-then-break-after-try
import logging

while True:  # expect: AF204
    try:
        payload = download()
    except ValueError:
        logging.exception("download failed")
        continue
    break
# case: one-handler-reraises-another-continues
while True:  # expect: AF204
    try:
        result = fetch()
        break
    except KeyboardInterrupt:
        raise
    except Exception:
        continue
# case: counter-never-checked
attempts = 0
while True:  # expect: AF204
    try:
        result = fetch()
        break
    except Exception:
        attempts += 1
# case: success-comparison-is-not-a-bound
def poll(url):
    while True:  # expect: AF204
        try:
            response = get(url)
            if response.status_code == 200:
                return response
        except ConnectionError:
            pass
# case: method-in-class
class Crawler:
    def run(self):
        while True:  # expect: AF204
            try:
                return self.session.get(self.url)
            except OSError as error:
                self.log(error)
# case: nested-function
def outer():
    def inner():
        while True:  # expect: AF204
            try:
                return fetch()
            except Exception:
                pass
    return inner
# case: parenthesised-true
while (True):  # expect: AF204
    try:
        connect()
        break
    except ConnectionRefusedError:
        pass
# case: try-inside-with
while True:  # expect: AF204
    with lock:
        try:
            value = read()
            break
        except BlockingIOError:
            pass
# case: break-in-nested-loop-does-not-leave
while True:  # expect: AF204
    try:
        return_value = fetch()
        break
    except Exception:
        for hook in hooks:
            hook()
            break
# case: raise-in-nested-function-does-not-leave
while True:  # expect: AF204
    try:
        value = fetch()
        break
    except Exception:
        def fail():
            raise RuntimeError("gave up")
        callbacks.append(fail)
# case: print-and-conditional-return
def load():
    while True:  # expect: AF204
        try:
            data = read()
            if data:
                return data
        except Exception as error:
            print(error)
# case: except-star
while True:  # expect: AF204
    try:
        results = run_group()
        break
    except* TimeoutError:
        pass
# case: google-genai-model
import google.generativeai as genai

model = genai.GenerativeModel("gemini-pro")

def ask(prompt):
    while True:  # expect: AF204
        try:
            return model.generate_content(prompt)
        except Exception:
            continue
# case: guard-without-exit
attempts = 0
while True:  # expect: AF204
    attempts += 1
    if attempts > 3:
        log.warning("still failing")
    try:
        result = fetch()
        break
    except Exception:
        pass
# case: legacy-openai-module-call
import openai

def ask(messages):
    while True:  # expect: AF204
        try:
            return openai.ChatCompletion.create(model="gpt-4", messages=messages)
        except openai.error.RateLimitError:
            continue
# case: chained-client-construction
import anthropic

def ask(prompt):
    while True:  # expect: AF204
        try:
            return anthropic.Anthropic().messages.create(messages=prompt)
        except anthropic.APIError:
            pass
# case: self-referencing-names-in-a-test-terminate
value = 0
while True:  # expect: AF204
    value = abs(value)
    if value:
        log(value)
    try:
        result = fetch()
        break
    except Exception:
        pass
# case: sleep-and-backoff-before-try
import asyncio

async def ask(agent, prompt):
    delay = 1
    while True:  # expect: AF204
        await asyncio.sleep(delay)
        delay = min(delay * 2, 60)
        try:
            return await agent.run(prompt)
        except Exception:
            pass
# case: try-inside-if-after-a-guard
import time

def fetch_when_enabled(settings):
    while True:  # expect: AF204
        if settings.enabled:
            try:
                return download()
            except OSError:
                time.sleep(1)
# case: provider-specific-failures
import time
from google.api_core.exceptions import ResourceExhausted, ServiceUnavailable

def embed(model, text):
    while True:  # expect: AF204
        try:
            return model.embed(text)
        except (ResourceExhausted, ServiceUnavailable):
            time.sleep(10)
# case: spin-lock-without-deadline
import os
import time

def acquire(path):
    while True:  # expect: AF204
        try:
            return os.open(path, os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            time.sleep(0.01)
# case: failure-selector-leaves-rate-limits-unbounded
# an evaluation harness: only "other" errors are counted; a rate limit sleeps and asks again forever
import time
import openai

def ask(prompt, retry_limit=3):
    retried = 0
    while True:  # expect: AF204
        try:
            return openai.ChatCompletion.create(model="gpt-4", messages=prompt)
        except Exception as e:
            if isinstance(e, openai.error.RateLimitError):
                time.sleep(5)
            elif "Invalid" in str(e):
                raise e
            else:
                if retried >= retry_limit:
                    raise e
                retried += 1
# case: model-asked-again-until-its-answer-parses
# a multi-agent builder: the request sits before the try, the parse in it
import json
import time

def pick_agents(builder_model, prompt):
    while True:  # expect: AF204
        reply = builder_model.create(messages=[{"role": "user", "content": prompt}]).choices[0].message.content
        try:
            agents = json.loads(reply)
            break
        except Exception:
            time.sleep(0.2)
            continue
    return agents
# case: request-formats-its-prompt-before-the-try
# an agent builder: the prompt is formatted inside the request, the answer parsed in the try
import json
import time

def select(self, task, pool):
    while True:  # expect: AF204
        reply = (
            self.builder_model.create(
                messages=[{"role": "user", "content": self.PROMPT.format(task=task, pool=pool)}]
            )
            .choices[0]
            .message.content
        )
        try:
            pairs = json.loads(reply)
            break
        except Exception:
            time.sleep(0.2)
            continue
    return pairs
# case: only-one-failure-changes-the-request
# an evaluation harness: a too-long prompt shrinks max_tokens, a rate limit just sleeps and asks again
import logging
import time
import openai

def complete(prompt, shared_kwargs, sleep_time=2):
    while True:  # expect: AF204
        try:
            batch = openai.Completion.create(prompt=prompt, **shared_kwargs)
            break
        except openai.error.OpenAIError as e:
            if "Please reduce your prompt" in str(e):
                shared_kwargs["max_tokens"] = int(shared_kwargs["max_tokens"] * 0.8)
            else:
                logging.warning("rate limited; retrying")
                time.sleep(sleep_time)
    return batch
