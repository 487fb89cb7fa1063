"""The package's metadata: a PEP 639 license, the small runtime install, extras for the rest."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from tests.runtime_helpers import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower() for requirement in requirements}


def test_license_is_an_spdx_expression_with_its_file() -> None:
    assert PROJECT["license"] == "MIT"
    files = PROJECT["license-files"]
    assert files and all((REPO / name).is_file() for name in files)
    assert (REPO / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    assert not any(classifier.startswith("License ::") for classifier in PROJECT["classifiers"])  # PEP 639
    setuptools = next(req for req in PYPROJECT["build-system"]["requires"] if req.startswith("setuptools"))
    minimum = re.search(r">=(\d+)", setuptools)
    assert minimum is not None and int(minimum.group(1)) >= 77  # the first with license-files


def test_the_runtime_install_stays_small_and_the_rest_are_extras() -> None:
    assert _names(PROJECT["dependencies"]) == {"libcst", "pyyaml", "tomli"}
    extras = PROJECT["optional-dependencies"]
    assert _names(extras["otel"]) == {"opentelemetry-api", "opentelemetry-sdk"}
    assert _names(extras["prometheus"]) == {"prometheus-client"}
    assert _names(extras["redis"]) == {"redis"}
    assert {"opentelemetry-sdk", "prometheus-client", "redis"} <= _names(extras["dev"])


def test_urls_keywords_and_classifiers_are_declared() -> None:
    assert {"Homepage", "Source", "Issues", "Documentation"} <= set(PROJECT["urls"])
    assert all(url.startswith("https://") for url in PROJECT["urls"].values())
    assert "opentelemetry" in PROJECT["keywords"] and "prometheus" in PROJECT["keywords"]
    python = "Programming Language :: Python :: 3."
    versions = {c.rsplit(" ", 1)[-1] for c in PROJECT["classifiers"] if c.startswith(python)}
    minimum = PROJECT["requires-python"].removeprefix(">=")
    assert minimum in versions and "Typing :: Typed" in PROJECT["classifiers"]
    assert (Path(REPO) / "agentfuse" / "py.typed").exists()
