"""Subprocesses running LLM CLIs (claude, llm, codex, ollama run) and ones that do not."""

import asyncio
import os
import shlex
import subprocess
import subprocess as sp
from subprocess import check_output

subprocess.run(["claude", "-p", "fix the tests"], check=True)  # expect: AF101
sp.run(["/usr/local/bin/codex", "exec", "refactor"])  # expect: AF101
check_output(["llm", "-m", "gpt-4o", "summarise"])  # expect: AF101
os.system("ollama run llama3 'hello'")  # expect: AF101
subprocess.run("cd repo && claude -p 'review'", shell=True)  # expect: AF101
subprocess.Popen(f"llm '{os.environ['PROMPT']}'", shell=True)  # expect: AF101
command = ["claude", "--print", "write docs"]
subprocess.run(command)  # expect: AF101

subprocess.run(["claude", "--version"])  # clean: AF101
subprocess.run(["ollama", "pull", "llama3"])  # clean: AF101
subprocess.run(["ollama", "list"])  # clean: AF101
subprocess.run(["git", "commit", "-m", "claude wrote this"])  # clean: AF101
os.system("echo llm")  # clean: AF101
subprocess.run(["python", "-m", "pytest"])  # clean: AF101
subprocess.run(["llm", "models"])  # clean: AF101
subprocess.run(["claude", "mcp", "list"])  # clean: AF101
subprocess.run(["llm", "embed", "-c", "hello"])  # expect: AF101
subprocess.run(shlex.split("codex exec 'fix the build'"))  # expect: AF101


async def agent_cli() -> None:
    await asyncio.create_subprocess_exec("claude", "-p", "go")  # expect: AF101
    await asyncio.create_subprocess_exec("claude", "--help")  # clean: AF101
    await asyncio.create_subprocess_shell("ollama run mistral < prompt.txt")  # expect: AF101
