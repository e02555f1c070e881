"""In production: several accounts side by side (the Airflow DAGs: tests/test_airflow_dag.py)."""

from pathlib import Path

import duckdb
import pytest

from klaviyo_emulator import AccountSpec, EmulatorConfig, run_emulator


def profile_count(folder: Path, account: str) -> int:
    with duckdb.connect(str(folder / f"klaviyo_{account}.duckdb")) as connection:
        return connection.execute(f"select count(*) from klaviyo_data_{account}.profiles").fetchone()[0]


def test_two_accounts_load_side_by_side_and_a_failing_one_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import klaviyo_pipeline

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt-data"))
    args = klaviyo_pipeline.parse_args(["--resources", "profiles,click,metrics"])
    first = EmulatorConfig(account=AccountSpec(seed=1, profiles=80, events=400), rate_limit_scale=0)
    second = EmulatorConfig(
        account=AccountSpec(seed=2, profiles=130, events=600),
        api_key="pk_second_account_key",
        rate_limit_scale=0,
    )
    with run_emulator(first) as brand_a, run_emulator(second) as brand_b:
        failures = klaviyo_pipeline.load_accounts(
            args,
            {"brand_a": (brand_a.base_url, brand_a.api_key), "brand_b": (brand_b.base_url, "pk_revoked_key")},
        )
        assert list(failures) == ["brand_b"]
        assert "API key" in failures["brand_b"] and "pk_revoked_key" not in failures["brand_b"]
        assert profile_count(tmp_path, "brand_a") == len(brand_a.account.profile_ids())

        brand_a.clear_log()
        failures = klaviyo_pipeline.load_accounts(
            args,
            {"brand_a": (brand_a.base_url, brand_a.api_key), "brand_b": (brand_b.base_url, brand_b.api_key)},
        )
        assert failures == {}
        assert profile_count(tmp_path, "brand_a") == len(brand_a.account.profile_ids())
        assert profile_count(tmp_path, "brand_b") == len(brand_b.account.profile_ids())
        # brand_a's state survived brand_b's failure: its second run resumed instead of starting over
        profile_filters = [
            e.query.get("filter", "") for e in brand_a.request_log if e.path.endswith("/profiles")
        ]
        assert profile_filters and all("greater-than(updated," in f for f in profile_filters)
