"""Shared fixtures: a micro suite (seconds to train) in a warehouse of its own.

The micro suite is the mini suite's code with tiny settings: 2 sizes x 3 seeds, 8 steps, a
300-token evaluation set; beside it a masked micro suite (BERT, 1 size x 3 seeds). They are
trained once per test session.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from extract.config import Settings, load_settings
from tests.helpers.micro import MICRO_CONFIG

# Nothing in the tests may reach for a hub or report usage.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "False")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


@pytest.fixture(scope="session")
def micro_config_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "seedconv.toml"
    path.write_text(MICRO_CONFIG)
    return path


@pytest.fixture(scope="session")
def micro_settings(tmp_path_factory, micro_config_path) -> Settings:
    """Settings of a session-wide warehouse holding the trained micro suite and its eval set."""
    from extract import pipeline

    settings = load_settings(micro_config_path, tmp_path_factory.mktemp("warehouse"))
    pipeline.train_mini_suites(settings, log=lambda message: None)
    for suite in settings.all_suites:
        pipeline.build_eval_set(settings, suite.name)
    return settings


@pytest.fixture(scope="session")
def micro_suite(micro_settings):
    from extract.sources.suites import open_suite

    return open_suite(micro_settings.suite(micro_settings.mini.name))


@pytest.fixture(scope="session")
def micro_masked_suite(micro_settings):
    from extract.sources.suites import open_suite

    return open_suite(micro_settings.suite(micro_settings.mini_mlm.name))


@pytest.fixture
def warehouse_copy(micro_settings, micro_config_path, tmp_path):
    """Settings of a warehouse of its own: the trained micro suites and their evaluation sets,
    copied, and no extraction yet (for tests that break or kill things)."""

    def make(name: str = "warehouse") -> Settings:
        root = tmp_path / name
        shutil.copytree(micro_settings.paths.suites, root / "suites")
        for folder in micro_settings.paths.lake.iterdir():
            if folder.name != "checkpoints" and not folder.name.startswith("."):
                shutil.copytree(folder, root / "lake" / folder.name)
        return load_settings(micro_config_path, root)

    return make


# The fault-injection suite: every test marked `fault` injects one fault (a kill, a full disk, a
# broken input) and passes only if the fault was survived with nothing already stored lost.
# The counts are printed at the end of the run (`make faults` runs only these).
FAULTS: dict[str, list[str]] = {"tried": [], "survived": []}


def pytest_runtest_logreport(report):
    if report.when == "call" and "fault" in report.keywords:
        FAULTS["tried"].append(report.nodeid)
        if report.passed:
            FAULTS["survived"].append(report.nodeid)


def pytest_terminal_summary(terminalreporter):
    if not FAULTS["tried"]:
        return
    tried, survived = len(FAULTS["tried"]), len(FAULTS["survived"])
    terminalreporter.section("fault injection")
    terminalreporter.write_line(f"{tried} faults tried, {survived} survived with nothing lost")
    for nodeid in FAULTS["tried"]:
        if nodeid not in FAULTS["survived"]:
            terminalreporter.write_line(f"NOT SURVIVED: {nodeid}")
