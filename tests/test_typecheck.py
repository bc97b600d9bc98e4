"""The type checker over the package: ``mypy`` with the project's configuration
(``[tool.mypy]`` in ``pyproject.toml``: the whole ``prodigy_sim`` package, the pydantic plugin)
reports no error. This test is how CI runs it (issue 10, guardrails).

mypy's incremental cache lives in pytest's cache directory (``.pytest_cache``, gitignored), so a
repeated run takes seconds; a clean checkout (or ``--cache-clear``) checks everything again.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mypy import api

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_reports_no_error(request: pytest.FixtureRequest,
                               tmp_path_factory: pytest.TempPathFactory,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    cache = getattr(request.config, "cache", None)  # None with -p no:cacheprovider
    cache_dir = (cache.mkdir("mypy") if cache is not None
                 else tmp_path_factory.mktemp("mypy_cache"))
    monkeypatch.chdir(ROOT)  # the configuration names the package relative to the root
    stdout, stderr, status = api.run(["--config-file", str(ROOT / "pyproject.toml"),
                                      "--cache-dir", str(cache_dir), "--no-color-output"])
    report = f"mypy exit status {status}:\n{stdout}{stderr}"
    assert status == 0, report
    checked = re.search(r"^Success: no issues found in (\d+) source files$", stdout, re.M)
    modules = len(list((ROOT / "prodigy_sim").rglob("*.py")))
    assert checked is not None and int(checked.group(1)) >= modules, report
