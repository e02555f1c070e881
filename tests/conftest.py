"""Shared fixtures: a Klaviyo emulator on loopback and a fresh DuckDB pipeline per test."""

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import dlt
import pytest

from klaviyo_emulator import AccountSpec, EmulatorConfig, run_emulator

# no telemetry, and retries fast enough for tests (the backoff logic is the same)
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
os.environ.setdefault("RUNTIME__REQUEST_BACKOFF_FACTOR", "0.05")
os.environ.setdefault("RUNTIME__REQUEST_MAX_ATTEMPTS", "8")

SMALL_ACCOUNT = AccountSpec(
    seed=11, profiles=120, events=1500, lists=4, large_list_members=230, campaigns_per_channel=3
)


@pytest.fixture
def emulator() -> Iterator[Any]:
    """A Klaviyo account of known content; rate limits off unless a test turns them on."""
    with run_emulator(EmulatorConfig(account=SMALL_ACCOUNT, rate_limit_scale=0)) as emu:
        yield emu


# Klaviyo's limits times this, at the emulator and in the client alike: the reporting API's 2 requests
# a minute become 60, so a test of four report windows does not wait a minute, and still gets no 429
RATE_LIMIT_SCALE = 30


@contextmanager
def rate_limits_scaled(emu: Any) -> Iterator[Any]:
    """The emulator enforcing Klaviyo's limits times RATE_LIMIT_SCALE, and the client keeping them."""
    import klaviyo.client

    emu.config.rate_limit_scale = RATE_LIMIT_SCALE
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(klaviyo.client, "RATE_LIMIT_SCALE", RATE_LIMIT_SCALE)
        yield emu


@pytest.fixture
def scaled_rate_limits(emulator: Any) -> Iterator[Any]:
    """The `emulator`, with Klaviyo's limits scaled up alike there and in the client."""
    with rate_limits_scaled(emulator) as emu:
        yield emu


@pytest.fixture
def pipeline(tmp_path: Path) -> dlt.Pipeline:
    return dlt.pipeline(
        pipeline_name="klaviyo_test",
        pipelines_dir=str(tmp_path / "pipelines"),
        destination=dlt.destinations.duckdb(str(tmp_path / "klaviyo.duckdb")),
        dataset_name="klaviyo_data",
    )
