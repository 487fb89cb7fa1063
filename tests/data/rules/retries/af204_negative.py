# case: counter-and-raise-in-handler
attempts = 0
while True:
    try:
        result = fetch()
        break
    except TimeoutError:
        attempts += 1
        if attempts >= 5:
            raise
# case: counter-checked-at-loop-top
attempts = 0
while True:
    attempts += 1
    if attempts > 5:
        raise RuntimeError("gave up")
    try:
        result = fetch()
        break
    except Exception:
        continue
# case: deadline-clock-call
import time

deadline = time.monotonic() + 60
while True:
    if time.monotonic() > deadline:
        raise TimeoutError("gave up")
    try:
        result = fetch()
        break
    except Exception:
        time.sleep(1)
# case: deadline-through-name
import time

start = time.time()
while True:
    try:
        return_value = fetch()
        break
    except Exception:
        elapsed = time.time() - start
        log(elapsed)
    if elapsed > 60:
        break
# case: handler-reraises
while True:
    try:
        result = fetch()
        break
    except Exception:
        cleanup()
        raise
# case: handler-returns
def fetch_or_none():
    while True:
        try:
            return fetch()
        except Exception:
            return None
# case: handler-breaks
while True:
    try:
        result = fetch()
        break
    except Exception:
        result = None
        break
# case: handler-exits-process
import sys

while True:
    try:
        result = fetch()
        break
    except Exception:
        sys.exit(1)
# case: worker-loop-never-leaves-on-success
import logging

while True:
    try:
        job = queue.get()
        handle(job)
    except Exception:
        logging.exception("job failed")
# case: queue-poller-with-sentinel
import queue

while True:
    try:
        item = inbox.get(timeout=1)
    except queue.Empty:
        continue
    if item is None:
        break
    process(item)
# case: bounded-for-loop
for attempt in range(5):
    try:
        result = fetch()
        break
    except Exception:
        continue
# case: bounded-while-condition
attempts = 0
while attempts < 5:
    try:
        result = fetch()
        break
    except Exception:
        attempts += 1
# case: try-finally-catches-nothing
while True:
    try:
        result = fetch()
        break
    finally:
        cleanup()
# case: loop-without-try
while True:
    line = read()
    if not line:
        break
# case: handler-falls-through-to-break
while True:
    try:
        result = fetch()
    except Exception:
        result = None
    break
# case: raise-from
while True:
    try:
        result = fetch()
        break
    except OSError as error:
        raise RuntimeError("fetch failed") from error
# case: pattern-in-strings
HELP = """
while True:
    try:
        return fetch()
    except Exception:
        continue
"""
# case: retry-in-inner-for-loop
while True:
    for attempt in range(3):
        try:
            result = fetch()
            break
        except Exception:
            continue
    serve(result)
# case: countdown-in-handler
remaining = 3
while True:
    try:
        result = fetch()
        break
    except Exception:
        remaining -= 1
        if not remaining:
            raise
# case: countdown-with-return
def fetch_some():
    remaining = 3
    while True:
        remaining = remaining - 1
        if remaining < 0:
            return None
        try:
            return fetch()
        except Exception:
            pass
# case: datetime-deadline
from datetime import datetime

while True:
    if datetime.now() > until:
        break
    try:
        result = fetch()
        break
    except Exception:
        pass
# case: handler-os-exit
import os

while True:
    try:
        result = fetch()
        break
    except Exception:
        os._exit(1)
# case: event-loop-reraises-cancel
import asyncio

async def serve():
    while True:
        try:
            await handle(await next_message())
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("message failed")
# case: while-true-in-nested-def-in-loop-body
while True:
    def attempt():
        try:
            return fetch()
        except Exception:
            return None
    if attempt():
        break
# case: interactive-input-loop
def ask_number():
    while True:
        try:
            return int(input("number: "))
        except ValueError:
            print("not a number")
# case: interactive-click-prompt
import click

def choose(teams):
    while True:
        try:
            index = int(click.prompt("team", type=str)) - 1
            return teams[index]
        except (ValueError, IndexError):
            click.echo("try again")
# case: interactive-chained-prompt
import questionary

def pick():
    while True:
        try:
            return int(questionary.text("how many?").ask())
        except ValueError:
            continue
# case: waiting-through-cancellation
import asyncio

async def close(future):
    while True:
        try:
            result = await asyncio.shield(future)
            break
        except asyncio.CancelledError:
            continue
    return result
# case: second-try-stage-skips-bad-items
import json

async def next_chunk(lines):
    while True:
        try:
            raw = await lines.__anext__()
        except StopAsyncIteration:
            raise
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        return obj
# case: consume-then-skip-bad-item
import json

def pop_valid(cursor):
    while True:
        row = cursor.fetchone()
        if row is None:
            return None
        try:
            item = json.loads(row[0])
        except ValueError:
            continue
        return item
# case: worker-stop-signal-is-conditional-break
import asyncio

async def cleanup_loop(pool):
    while True:
        try:
            if pool.alive:
                await asyncio.sleep(pool.interval)
                await pool.cleanup()
            else:
                break
        except Exception as error:
            log(error)
# case: raise-in-try-body-is-not-success
async def dispatch(events):
    while True:
        event = await events.get()
        try:
            if event.invalid:
                raise ValueError("bad event")
            handle(event)
        except Exception as error:
            report(error)
# case: consume-inside-with-then-skip-bad-item
import json
from contextlib import closing

def pop_valid(conn):
    while True:
        with closing(conn.cursor()) as cursor:
            cursor.execute("DELETE FROM queue RETURNING data")
            row = cursor.fetchone()
            if row is None:
                return None
            try:
                return json.loads(row[0])
            except ValueError:
                continue
# case: control-flow-exception-is-not-a-failure
class SwitchMode(Exception):
    pass

def main(session):
    while True:
        try:
            session.run()
            return
        except SwitchMode as switch:
            session = session.switch(switch.mode)
# case: keyboard-interrupt-is-not-a-failure
def serve(app):
    while True:
        try:
            return app.run()
        except KeyboardInterrupt:
            print("press ctrl-c again to quit")
# case: growing-delay-gives-up
# a coding agent: the backoff delay doubles and the loop gives up past a ceiling
import time

def send(model, messages):
    delay = 0.125
    while True:
        try:
            return model.complete(messages)
        except ConnectionError as err:
            delay *= 2
            should_retry = delay <= 60
            if not should_retry:
                raise
            time.sleep(delay)
# case: input-fetched-before-the-try
# a queue consumer: a new item each turn, a bad one is skipped
def consume(queue, handle):
    while True:
        item = queue.get()
        try:
            handle(item)
            break
        except ValueError:
            continue
# case: next-free-port-after-a-port-clash
# a tool workspace: a port clash picks another port for the container's arguments and tries that
import docker

def start(client, kwargs, free_port):
    while True:
        try:
            container = client.containers.run(**kwargs)
            break
        except docker.errors.DockerException as e:
            if "Ports are not available" not in str(e):
                raise
            kwargs["ports"][8000] = free_port()
    return container
