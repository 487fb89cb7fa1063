"""``agentfuse lint [PATH ...]``: the CLI over the engine.

Exit status: 0 no findings, 1 findings, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from agentfuse.cli_args import number
from agentfuse.lint.cache import ResultCache, cache_directory, run_key
from agentfuse.lint.checker import RuleSet
from agentfuse.lint.config import (
    MAX_FILE_BYTES_CEILING,
    ConfigError,
    LintConfig,
    Selection,
    load_config,
    parse_codes,
)
from agentfuse.lint.discovery import discover, normalize_patterns
from agentfuse.lint.reporters import FORMATTERS, RuleInfo, sort_key, write_output
from agentfuse.lint.runner import apply_selection, display_path, lint_files
from agentfuse.lint.finding import Finding
from agentfuse.lint_rules import REGISTRY, RuleEntry

if TYPE_CHECKING:
    from agentfuse.lint.fixer import FileFix

POLICY_SUFFIXES = (".yaml", ".yml")
POLICY_NAMES = ("policy.yaml", "policy.yml", "agentfuse.yaml", "agentfuse.yml")
JOBS = number(minimum=1, maximum=1024, integer=True, what="--jobs")
"""``-j``: 1 to 1024 worker processes."""
MAX_FILE_BYTES = number(minimum=0, maximum=MAX_FILE_BYTES_CEILING, integer=True, what="--max-file-bytes")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``lint`` sub-command."""
    parser = subparsers.add_parser(
        "lint",
        help="find unguarded LLM calls, endless retries and other agent hazards",
        description="Lint Python files (and policy.yaml files named explicitly) for agent hazards.",
    )
    parser.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="files or folders (default: .)")
    parser.add_argument("--select", metavar="CODES", help="comma-separated code prefixes to report, e.g. AF3,AF401")
    parser.add_argument("--ignore", metavar="CODES", help="comma-separated code prefixes not to report")
    parser.add_argument("--exclude", metavar="PATTERNS", help="comma-separated globs replacing the default excludes")
    parser.add_argument("--extend-exclude", metavar="PATTERNS", help="comma-separated globs to exclude as well")
    parser.add_argument("--format", choices=sorted(FORMATTERS), default="text", help="output format (default: text)")
    parser.add_argument("-j", "--jobs", type=JOBS, default=None, help="worker processes (default: CPUs)")
    parser.add_argument(
        "--max-file-bytes",
        type=MAX_FILE_BYTES,
        metavar="BYTES",
        help="larger files get AF001 instead of a parse (default: 4000000, or [tool.agentfuse]; 0 = no limit)",
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="neither read nor write the result cache (default: .agentfuse_cache/ next to pyproject.toml)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--fix", action="store_true", help="apply the available fixes and write the files")
    mode.add_argument("--diff", action="store_true", help="print the fixes as a unified diff, write nothing")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``agentfuse lint``; returns the exit status."""
    try:
        return _run(args)
    except ConfigError as exc:
        print(f"agentfuse lint: error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    paths: list[Path] = args.paths or [Path(".")]
    missing = [str(p) for p in paths if not p.exists() and not p.is_symlink()]
    if missing:
        raise ConfigError(f"no such file or folder: {', '.join(missing)}")
    config = _effective_config(args, paths[0])
    rules = enabled_rules(config.selection)
    policy_files = [p for p in paths if is_policy_file(p)]
    python_paths = [p for p in paths if p not in policy_files]
    files = list(discover(python_paths, config.exclude)) if python_paths else []
    cwd = Path.cwd().absolute()
    rule_set = RuleSet.of(rules)
    if args.fix or args.diff:
        findings = _fix(files, rule_set, config, cwd, write=args.fix)
    else:
        cache = None if args.no_cache else _open_cache(config, rules, cwd)
        findings = lint_files(files, rule_set, config, jobs=args.jobs, cwd=cwd, cache=cache)
        if cache is not None:
            cache.prune()
    policy_findings = check_policy_files(policy_files, cwd)
    findings = sorted([*findings, *apply_selection(policy_findings, config, cwd)], key=sort_key)
    if not args.diff:
        describe = args.format == "sarif"  # only SARIF describes the rules (their classes import libcst)
        infos = [RuleInfo.of(rule.load()) for rule in rules] if describe else []
        write_output(FORMATTERS[args.format](findings, infos))
    return 1 if findings else 0


def _effective_config(args: argparse.Namespace, first_path: Path) -> LintConfig:
    config = load_config(first_path if first_path.is_dir() else first_path.parent)
    selection = config.selection
    if args.select is not None:
        selection = dataclasses.replace(selection, select=parse_codes(args.select, "--select"))
    if args.ignore is not None:
        selection = dataclasses.replace(selection, ignore=parse_codes(args.ignore, "--ignore"))
    exclude = normalize_patterns(config.exclude, config.root)
    cwd = Path.cwd()
    if args.exclude is not None:
        exclude = normalize_patterns(_split(args.exclude), cwd)
    if args.extend_exclude is not None:
        exclude = (*exclude, *normalize_patterns(_split(args.extend_exclude), cwd))
    max_file_bytes = config.max_file_bytes if args.max_file_bytes is None else int(args.max_file_bytes)
    return dataclasses.replace(config, selection=selection, exclude=exclude, max_file_bytes=max_file_bytes)


def _open_cache(config: LintConfig, rules: Sequence[RuleEntry], cwd: Path) -> ResultCache | None:
    """The run's result cache (``--fix``/``--diff`` never use one: they re-check what they rewrite)."""
    key = run_key(config, [rule.code for rule in rules], cwd)
    return ResultCache.open(cache_directory(config, cwd), key)


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def enabled_rules(selection: Selection) -> list[RuleEntry]:
    """Registered rules that the selection turns on (off-by-default ones only when selected),
    as registry entries: their classes are imported when a file needs them."""
    return [entry for entry in REGISTRY if selection.enabled(entry.code, default_enabled=entry.default_enabled)]


def is_policy_file(path: Path) -> bool:
    """A YAML file named on the command line is a policy to check, not Python."""
    return path.suffix in POLICY_SUFFIXES or path.name in POLICY_NAMES


def check_policy_files(paths: Sequence[Path], cwd: Path) -> list[Finding]:
    """Policy problems reported on the YAML files themselves, by the runtime's loader.

    ``agentfuse.lint_rules.policy.check_policy_file`` is looked up when needed, so this
    reports nothing until the policy rules provide it, and everything once they do.
    """
    if not paths:
        return []
    try:
        from agentfuse.lint_rules.policy import check_policy_file  # type: ignore[attr-defined]
    except ImportError:
        return []
    findings: list[Finding] = []
    for path in paths:
        display = display_path(path, cwd)
        findings.extend(dataclasses.replace(f, path=display) for f in check_policy_file(str(path)))
    return findings


def _fix(files: Sequence[Path], rule_set: RuleSet, config: LintConfig, cwd: Path, *, write: bool) -> list[Finding]:
    """Fix (or diff) each file in this process; returns what is left to report."""
    from agentfuse.lint.fixer import fix_file  # libcst's codemod machinery: only for --fix/--diff

    remaining: list[Finding] = []
    changed: list[FileFix] = []

    def keep(finding: Finding) -> bool:
        return bool(apply_selection([finding], config, cwd))

    for path in files:
        result = fix_file(
            path,
            display_path(path, cwd),
            rule_set,
            options=config.options,
            keep=keep,
            write=write,
            max_bytes=config.max_file_bytes,
        )
        remaining.extend(apply_selection(result.remaining, config, cwd))
        if result.after != result.before:
            changed.append(result)
    for result in changed:
        if not write:
            write_output(result.diff())
        codes = sorted({f.code for f in result.fixed})
        verb = "fixed" if write else "would fix"
        counts = ", ".join(f"{code} x{sum(f.code == code for f in result.fixed)}" for code in codes)
        print(f"{result.display}: {verb} {counts}", file=sys.stderr)
    total = sum(len(r.fixed) for r in changed)
    print(f"{'Fixed' if write else 'Would fix'} {total} finding(s) in {len(changed)} file(s).", file=sys.stderr)
    if not write and changed:
        return [*remaining, *(f for r in changed for f in r.fixed)]
    return remaining
