"""Metric names as users type them: tables unique and readable in any script, mistakes loud, reports' conversion metric chosen by a stated rule."""

import logging
from datetime import timedelta
from typing import Any, Dict, List

import dlt
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from klaviyo import MAX_EXTRA_METRICS, metric_table_name
from klaviyo.client import KlaviyoClient
from klaviyo_pipeline import selected_resources
from tests.helpers import column_values, source_for, table_counts


@pytest.mark.parametrize(
    "metric, table",
    [
        ("Placed Order", "placed_order"),
        ("Café ordered", "cafe_ordered"),
        ("Заказ оформлен", "zakaz_oformlen"),
        ("Προβολή προϊόντος", "provoli_proiontos"),
        ("注文完了", "zhuwenwanle"),
        ("123 Go", "metric_123_go"),
        ("★★★", "metric_d398ad09"),  # no letters in any script: a stable hash of the name
    ],
)
def test_a_metric_name_in_any_script_gives_a_readable_ascii_table_name(metric: str, table: str) -> None:
    assert metric_table_name(metric) == table


def test_a_very_long_metric_name_is_cut_with_a_stable_suffix() -> None:
    long_name = "Completed the extremely long onboarding checklist step " * 3
    table = metric_table_name(long_name)
    assert len(table) <= 60 and table.startswith("completed_the_extremely_long")
    assert metric_table_name(long_name + "!") != table  # same first 51 characters, other suffix


@pytest.mark.parametrize(
    "extra_metrics, complaint",
    [
        (
            ["Placed Order", "Placed order"],
            "'Placed Order' and 'Placed order' would both load into table `placed_order`",
        ),
        (["Profiles"], "'Profiles' would load into `profiles`, one of the source's own tables"),
        (  # the table of the deletion check, whether or not `deleted_profiles` turns it on
            ["Deleted Profiles"],
            "'Deleted Profiles' would load into `deleted_profiles`, one of the source's own tables",
        ),
        (["Click"], "the table of the metric 'Clicked Email'"),
        (["Placed Order", ""], "empty"),
        ("Placed Order", "must be a list"),
        ([f"Custom Metric {i}" for i in range(MAX_EXTRA_METRICS + 1)], "load the `events` table instead"),
    ],
)
def test_extra_metrics_that_cannot_each_have_their_own_table_fail_before_any_request(
    emulator: Any, extra_metrics: Any, complaint: str
) -> None:
    with pytest.raises(ValueError) as failure:
        source_for(emulator, extra_metrics=extra_metrics)
    assert complaint in str(failure.value)
    assert emulator.request_log == []


def test_two_non_latin_metric_names_load_into_two_tables(emulator: Any, pipeline: dlt.Pipeline) -> None:
    account = emulator.account
    for name, count in (("Заказ оформлен", 3), ("Возврат оформлен", 2)):
        account.add_metric(name)
        account.add_events(count, name, integration_key="api")
    source = source_for(emulator, extra_metrics=["Заказ оформлен", "Возврат оформлен"])
    pipeline.run(source.with_resources("zakaz_oformlen", "vozvrat_oformlen"))
    counts = table_counts(pipeline)
    assert (counts["zakaz_oformlen"], counts["vozvrat_oformlen"]) == (3, 2)


def test_the_largest_number_of_extra_metrics_loads_a_table_each(
    emulator: Any, pipeline: dlt.Pipeline
) -> None:
    names = [f"Custom Metric {i}" for i in range(MAX_EXTRA_METRICS)]
    for name in names:
        emulator.account.add_metric(name)
    emulator.account.add_events(4, names[-1], integration_key="api")
    tables = [metric_table_name(n) for n in names]
    pipeline.extract(source_for(emulator, extra_metrics=names).with_resources(*tables))
    pipeline.normalize()
    counts = pipeline.last_trace.last_normalize_info.row_counts
    assert set(tables) <= set(pipeline.default_schema.tables)
    assert counts["custom_metric_499"] == 4


def warnings_of(caplog: pytest.LogCaptureFixture) -> List[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_metric_name_in_the_wrong_case_loads_the_metric_and_says_so(
    emulator: Any, pipeline: dlt.Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    account = emulator.account
    placed = {e["id"] for e in account.events_for_metric(account.metric_id("Placed Order", "shopify"))}
    with caplog.at_level(logging.WARNING):
        pipeline.run(source_for(emulator, extra_metrics=["placed order"]).with_resources("placed_order"))
    assert set(column_values(pipeline, "placed_order")) == placed and placed
    said = [w for w in warnings_of(caplog) if "'placed order'" in w]
    assert len(said) == 1 and "'Placed Order'" in said[0]


def test_a_near_miss_of_a_metric_name_fails_with_the_suggestion(
    emulator: Any, pipeline: dlt.Pipeline
) -> None:
    with pytest.raises(PipelineStepFailed) as failure:
        pipeline.run(source_for(emulator, extra_metrics=["Placed Ordr"]).with_resources("placed_ordr"))
    assert "did you mean 'Placed Order'?" in str(failure.value)


def test_a_metric_the_account_does_not_have_yet_warns_once_and_gives_an_empty_table(
    emulator: Any, pipeline: dlt.Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        pipeline.run(source_for(emulator, extra_metrics=["Started Trial"]).with_resources("started_trial"))
    assert table_counts(pipeline)["started_trial"] == 0
    said = [w for w in warnings_of(caplog) if "'Started Trial'" in w]
    assert len(said) == 1 and "first event" in said[0]


def test_resources_with_extra_metrics_selects_the_metric_tables_too(emulator: Any) -> None:
    source = source_for(emulator, extra_metrics=["Placed Order"])
    assert selected_resources(source, ["profiles", "click"], ["Placed Order"]) == [
        "profiles",
        "click",
        "placed_order",
    ]


@pytest.mark.parametrize(
    "requested, hint",
    [
        (["clicks"], "clicks: did you mean click?"),
        (["placed_order"], "needs the metric's name in --extra-metrics"),
    ],
)
def test_an_unknown_resource_gets_the_sorted_tables_and_a_suggestion(
    emulator: Any, requested: List[str], hint: str
) -> None:
    source = source_for(emulator)
    with pytest.raises(SystemExit) as failure:
        selected_resources(source, requested, [])
    message = str(failure.value)
    assert hint in message
    listed = message.split("Tables: ")[1].split(", ")
    assert listed == sorted(source.resources)
    assert emulator.request_log == []


def conversion_ids_sent(monkeypatch: pytest.MonkeyPatch) -> List[str]:
    """The conversion_metric_id of every report request the source sends."""
    sent: List[str] = []
    paginate = KlaviyoClient.paginate

    def recording(self: KlaviyoClient, endpoint: str, *args: Any, **kwargs: Any) -> Any:
        body: Dict[str, Any] = kwargs.get("body") or {}
        if body:
            sent.append(body["data"]["attributes"]["conversion_metric_id"])
        return paginate(self, endpoint, *args, **kwargs)

    monkeypatch.setattr(KlaviyoClient, "paginate", recording)
    return sent


def test_of_several_conversion_metrics_the_one_with_the_latest_event_is_used_and_logged(
    emulator: Any, pipeline: dlt.Pipeline, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = emulator.account
    shopify = account.metric_id("Placed Order", "shopify")
    api = account.add_metric("Placed Order", "api")
    account.add_events(2, "Placed Order", "api", start=account.now - timedelta(minutes=5))
    sent = conversion_ids_sent(monkeypatch)
    with caplog.at_level(logging.WARNING):
        pipeline.run(source_for(emulator).with_resources("flow_values_report"))
    assert sent and set(sent) == {api}
    said = [w for w in warnings_of(caplog) if "conversion" in w]
    assert len(said) == 1 and api in said[0] and shopify in said[0] and "conversion_metric_id" in said[0]
    assert "last event none" not in said[0]  # decided by the events' dates, not by a tie-break


def test_the_conversion_metric_can_be_chosen_by_id(
    emulator: Any, pipeline: dlt.Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = emulator.account
    shopify = account.metric_id("Placed Order", "shopify")
    account.add_metric("Placed Order", "api")
    account.add_events(2, "Placed Order", "api", start=account.now - timedelta(minutes=5))
    sent = conversion_ids_sent(monkeypatch)
    pipeline.run(source_for(emulator, conversion_metric_id=shopify).with_resources("flow_values_report"))
    assert sent and set(sent) == {shopify}


def test_an_unknown_conversion_metric_id_fails_naming_the_metrics_of_that_name(
    emulator: Any, pipeline: dlt.Pipeline
) -> None:
    shopify = emulator.account.metric_id("Placed Order", "shopify")
    with pytest.raises(PipelineStepFailed) as failure:
        pipeline.run(source_for(emulator, conversion_metric_id="XyZ123").with_resources("flow_values_report"))
    assert "'XyZ123' is not a metric" in str(failure.value) and shopify in str(failure.value)
