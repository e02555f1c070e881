"""list_members by default: an unchanged run costs a few requests; a change is read exactly."""

import collections
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, Set

import dlt
import pytest

from klaviyo_emulator import AccountSpec, EmulatorConfig, run_emulator
from klaviyo_emulator.membership import delete_profile
from tests.helpers import source_for

# one list of 1,400 members (its count is one request; its ids would be 14), two small, one empty
ACCOUNT = AccountSpec(seed=2, profiles=1500, events=100, lists=4, large_list_members=1400)


@pytest.fixture
def emu() -> Iterator[Any]:
    with run_emulator(EmulatorConfig(account=ACCOUNT, rate_limit_scale=0)) as emulator:
        yield emulator


def members_in_klaviyo(account: Any) -> Set[tuple]:
    return {(list_id, member) for list_id in account.list_ids() for member in account.list_members(list_id)}


def members_loaded(pipeline: dlt.Pipeline, where: str = "true") -> Set[tuple]:
    with pipeline.sql_client() as client:
        return {
            tuple(row) for row in client.execute_sql(f"select list_id, id from list_members where {where}")
        }


def requests_by_operation(emulator: Any) -> Dict[str, int]:
    return dict(collections.Counter(entry.operation_id for entry in emulator.request_log))


def lists_by_size(account: Any) -> list:
    return sorted(account.list_ids(), key=lambda i: len(account.list_members(i)))


def test_an_unchanged_run_reads_each_lists_joins_counts_the_large_list_and_reads_small_ones_ids(
    emu: Any, pipeline: dlt.Pipeline
) -> None:
    account = emu.account
    empty, small, other_small, large = lists_by_size(account)
    assert [len(account.list_members(i)) for i in (empty, large)] == [0, 1400]
    pipeline.run(source_for(emu).with_resources("list_members"))
    emu.clear_log()

    pipeline.run(source_for(emu).with_resources("list_members"))

    assert requests_by_operation(emu) == {
        "get_lists": 1,
        "get_profiles_for_list": 4,  # the joins since the last run, one request per list
        "get_list": 1,  # the large list's profile_count
        "get_profile_ids_for_list": 2,  # a page of ids for each small list (quicker than its count)
    }
    counted = [e for e in emu.request_log if e.operation_id == "get_list"]
    assert counted[0].path.rstrip("/").endswith(large)
    assert counted[0].query["additional-fields[list]"] == "profile_count"
    assert pipeline.last_trace.last_normalize_info.row_counts.get("list_members", 0) == 0
    assert members_loaded(pipeline) == members_in_klaviyo(account)


def test_a_member_who_left_the_large_list_is_found_by_reading_only_that_lists_ids(
    emu: Any, pipeline: dlt.Pipeline
) -> None:
    account = emu.account
    large = lists_by_size(account)[-1]
    pipeline.run(source_for(emu).with_resources("list_members"))
    leaver = sorted(account.list_members(large))[0]
    account.remove_list_member(large, leaver)
    emu.clear_log()

    pipeline.run(source_for(emu).with_resources("list_members"))

    ids_reads = [e for e in emu.request_log if e.operation_id == "get_profile_ids_for_list"]
    large_reads = [e for e in ids_reads if f"/lists/{large}/" in e.path]
    assert len(large_reads) == 14  # 1,399 ids, 100 a page
    assert len(ids_reads) == len(large_reads) + 2  # and the small lists' usual page each
    assert (large, leaver) not in members_loaded(pipeline)
    assert members_loaded(pipeline) == members_in_klaviyo(account)


def test_a_new_join_is_added_without_reading_the_list_again(emu: Any, pipeline: dlt.Pipeline) -> None:
    account = emu.account
    large = lists_by_size(account)[-1]
    pipeline.run(source_for(emu).with_resources("list_members"))
    joiner = sorted(account.profile_ids() - set(account.list_members(large)))[0]
    account.add_list_member(large, joiner)
    emu.clear_log()

    pipeline.run(source_for(emu).with_resources("list_members"))

    assert "get_profile_ids_for_list" not in {
        e.operation_id for e in emu.request_log if f"/lists/{large}/" in e.path
    }
    assert (large, joiner) in members_loaded(pipeline)
    assert members_loaded(pipeline) == members_in_klaviyo(account)


def test_with_removed_members_mark_a_deleted_persons_rows_keep_removed_at_and_deleted_at_only(
    emu: Any, pipeline: dlt.Pipeline
) -> None:
    account = emu.account
    large = lists_by_size(account)[-1]
    pipeline.run(source_for(emu, removed_members="mark").with_resources("list_members"))
    person = sorted(account.list_members(large))[0]
    delete_profile(account, person)

    pipeline.run(source_for(emu, removed_members="mark").with_resources("list_members"))

    with pipeline.sql_client() as client:
        rows = client.execute_sql(
            "select list_id, email, joined_group_at, removed_at, deleted_at from list_members where id = %s",
            person,
        )
    assert len(rows) == 1
    list_id, email, joined, removed_at, deleted_at = rows[0]
    assert (list_id, email) == (large, None)
    assert joined is not None and removed_at is not None and deleted_at is not None
    assert members_loaded(pipeline, "removed_at is null") == members_in_klaviyo(account)


def test_a_deleted_list_takes_its_members_rows_with_it(emu: Any, pipeline: dlt.Pipeline) -> None:
    account = emu.account
    small = lists_by_size(account)[1]
    pipeline.run(source_for(emu).with_resources("list_members"))
    account.delete_list(small)

    pipeline.run(source_for(emu).with_resources("list_members"))

    assert small not in {list_id for list_id, _ in members_loaded(pipeline)}
    assert members_loaded(pipeline) == members_in_klaviyo(account)


def test_membership_needs_no_sql_destination_the_filesystem_gets_only_what_changed(
    emu: Any, tmp_path: Path
) -> None:
    account = emu.account
    large = lists_by_size(account)[-1]
    files = dlt.pipeline(
        pipeline_name="klaviyo_files",
        pipelines_dir=str(tmp_path / "pipelines"),
        destination=dlt.destinations.filesystem(str(tmp_path / "files")),
        dataset_name="klaviyo_data",
    )
    files.run(source_for(emu).with_resources("list_members"), loader_file_format="parquet")
    first = files.last_trace.last_normalize_info.row_counts["list_members"]
    files.run(source_for(emu).with_resources("list_members"), loader_file_format="parquet")
    unchanged = files.last_trace.last_normalize_info.row_counts.get("list_members", 0)
    leaver = sorted(account.list_members(large))[0]
    account.remove_list_member(large, leaver)
    files.run(source_for(emu).with_resources("list_members"), loader_file_format="parquet")

    assert first == len(members_in_klaviyo(account)) + 1
    assert unchanged == 0
    # files cannot delete: the member who left comes as one row with `removed_at`
    with files.sql_client() as client:
        name = client.make_qualified_table_name("list_members")
        rows = client.execute_sql(f"select list_id, id from {name} where removed_at is not null")
    assert [tuple(r) for r in rows] == [(large, leaver)]


def test_deleted_profiles_mark_leaves_a_tombstone_and_drops_the_person_from_lists(
    emu: Any, pipeline: dlt.Pipeline
) -> None:
    account = emu.account
    tables = ("profiles", "list_members", "deleted_profiles")
    pipeline.run(source_for(emu, deleted_profiles="mark").with_resources(*tables))
    person = sorted(account.list_members(lists_by_size(account)[-1]))[0]
    delete_profile(account, person)

    pipeline.run(source_for(emu, deleted_profiles="mark", check_deletions_now=True).with_resources(*tables))

    with pipeline.sql_client() as client:
        tombstone = client.execute_sql(
            "select email, first_name, deleted_at from profiles where id = %s", person
        )
        others = client.execute_sql("select count(*) from profiles where deleted_at is null")[0][0]
        deleted = client.execute_sql("select id from deleted_profiles")
    assert len(tombstone) == 1 and tombstone[0][:2] == (None, None) and tombstone[0][2] is not None
    assert others == len(account.profile_ids())
    assert [r[0] for r in deleted] == [person]
    assert person not in {member for _, member in members_loaded(pipeline)}


def test_deleted_profiles_drop_removes_the_person_and_with_the_option_their_events(
    emu: Any, pipeline: dlt.Pipeline
) -> None:
    account = emu.account
    events = collections.Counter(event["profile_id"] for event in account.all_events())
    person = max(events, key=lambda p: (events[p], p))
    options = {"deleted_profiles": "drop", "deleted_profile_events": "drop"}
    tables = ("profiles", "events", "deleted_profiles")
    pipeline.run(source_for(emu, **options).with_resources(*tables))
    with pipeline.sql_client() as client:
        before = client.execute_sql("select count(*) from events where profile_id = %s", person)[0][0]
    delete_profile(account, person)

    pipeline.run(source_for(emu, check_deletions_now=True, **options).with_resources(*tables))

    with pipeline.sql_client() as client:
        left = client.execute_sql("select count(*) from profiles where id = %s", person)[0][0]
        events_left = client.execute_sql("select count(*) from events where profile_id = %s", person)[0][0]
        profiles = client.execute_sql("select count(*) from profiles")[0][0]
    assert before == events[person] > 0
    assert (left, events_left) == (0, 0)
    assert profiles == len(account.profile_ids())


def test_the_deletion_check_runs_once_a_week_unless_asked_for(emu: Any, pipeline: dlt.Pipeline) -> None:
    def id_scans() -> int:
        return sum(1 for e in emu.request_log if e.query.get("fields[profile]") == "id")

    def source(**options: Any) -> Any:
        return source_for(emu, deleted_profiles="mark", **options).with_resources(
            "profiles", "deleted_profiles"
        )

    pipeline.run(source())  # the first load: nothing loaded to compare yet, the week starts
    emu.clear_log()
    pipeline.run(source())
    scans_within_the_week = id_scans()
    pipeline.run(source(check_deletions_now=True))
    scans_on_demand = id_scans() - scans_within_the_week
    pipeline.run(source(deletion_check_days=0))
    scans_when_due = id_scans() - scans_within_the_week - scans_on_demand

    pages = -(-len(emu.account.profile_ids()) // 100)
    assert (scans_within_the_week, scans_on_demand, scans_when_due) == (0, pages, pages)


def test_segment_members_are_checked_the_same_way_the_large_segment_by_its_count(
    pipeline: dlt.Pipeline,
) -> None:
    spec = AccountSpec(seed=3, profiles=2500, events=50, lists=1, segments=2, large_list_members=10)
    with run_emulator(EmulatorConfig(account=spec, rate_limit_scale=0)) as emulator:
        account = emulator.account
        large, small = sorted(account.segment_ids(), key=lambda i: -len(account.segment_members(i)))
        assert len(account.segment_members(large)) == 1500
        pipeline.run(source_for(emulator).with_resources("segment_members"))
        emulator.clear_log()

        pipeline.run(source_for(emulator).with_resources("segment_members"))

        assert requests_by_operation(emulator) == {
            "get_segments": 1,
            "get_profiles_for_segment": 2,
            "get_segment": 1,
            "get_profile_ids_for_segment": 1,
        }
        counted = [e for e in emulator.request_log if e.operation_id == "get_segment"]
        assert counted[0].path.rstrip("/").endswith(large)
        with pipeline.sql_client() as client:
            loaded = {tuple(r) for r in client.execute_sql("select segment_id, id from segment_members")}
        expected = {(s, m) for s in account.segment_ids() for m in account.segment_members(s)}
        assert loaded == expected


class RequestsInFlight:
    """The most requests the emulator answered at once, of any operation (its fault hook sees a
    request arrive, its log sees it answered)."""

    def __init__(self, emulator: Any) -> None:
        self._lock = threading.Lock()
        self.now = self.peak = 0
        emulator.fault_hook = self.arrived
        log = emulator._log

        def answered(entry: Any) -> None:
            if entry.operation_id:
                with self._lock:
                    self.now -= 1
            log(entry)

        emulator._log = answered

    def arrived(self, info: Any) -> None:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)


def test_the_joins_counts_and_ids_of_a_run_share_the_tables_bound_of_requests_in_flight(
    pipeline: dlt.Pipeline,
) -> None:
    # four lists of 1,400 and two small ones; one member leaves each large list and 300 people join
    # a small one, so the run reads every list's joins (the small list's in parallel windows), counts
    # some lists and reads others' ids (14 pages each), side by side, 15 ms a request
    spec = AccountSpec(seed=2, profiles=1500, events=100, lists=4, large_list_members=1400)
    with run_emulator(EmulatorConfig(account=spec, rate_limit_scale=0, latency_ms=15)) as emulator:
        account = emulator.account
        large = lists_by_size(account)[-1]
        for number in range(3):
            account.lists_by_id[f"BIG{number}"] = dict(account.lists_by_id[large], id=f"BIG{number}")
            account.lists_by_id[f"BIG{number}"]["members"] = dict(account.lists_by_id[large]["members"])
        account.bump()
        pipeline.run(source_for(emulator, workers=3).with_resources("list_members"))
        for list_id in (large, "BIG0", "BIG1", "BIG2"):
            account.remove_list_member(list_id, sorted(account.list_members(list_id))[0])
        small = lists_by_size(account)[1]
        for joiner in sorted(account.profile_ids() - set(account.list_members(small)))[:300]:
            account.add_list_member(small, joiner)
        emulator.clear_log()
        in_flight = RequestsInFlight(emulator)

        pipeline.run(source_for(emulator, workers=3).with_resources("list_members"))

        operations = requests_by_operation(emulator)
        assert operations["get_profile_ids_for_list"] >= 14 and operations["get_list"] >= 1
        assert 2 <= in_flight.peak <= 3, in_flight.peak
        assert members_loaded(pipeline) == members_in_klaviyo(account)
