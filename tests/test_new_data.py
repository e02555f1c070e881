"""The account data beyond the original connector's tables: each table equals the emulator's account."""

from typing import Any, Dict, List

import dlt

from tests.helpers import source_for

NEW_TABLES = ("accounts",)


def rows(pipeline: dlt.Pipeline, table: str, order_by: str = "id") -> List[Dict[str, Any]]:
    """The loaded rows of `table` as dicts, without dlt's own columns."""
    with (
        pipeline.sql_client() as client,
        client.execute_query(f"select * from {table} order by {order_by}") as cursor,
    ):
        names = [d[0] for d in cursor.description]
        return [
            {n: v for n, v in zip(names, values, strict=True) if not n.startswith("_dlt")}
            for values in cursor.fetchall()
        ]


def test_new_tables_are_opt_in(emulator: Any) -> None:
    source = source_for(emulator)
    assert set(NEW_TABLES) <= set(source.resources)
    assert not set(NEW_TABLES) & set(source.selected_resources)


def test_accounts_table_is_the_account_the_key_belongs_to(emulator: Any, pipeline: dlt.Pipeline) -> None:
    info = emulator.account.account_info
    contact = info["contact_information"]
    pipeline.run(source_for(emulator).with_resources("accounts"))
    assert rows(pipeline, "accounts") == [
        {
            "id": info["id"],
            "test_account": info["test_account"],
            "contact_information__default_sender_name": contact["default_sender_name"],
            "contact_information__default_sender_email": contact["default_sender_email"],
            "contact_information__website_url": contact["website_url"],
            "contact_information__organization_name": contact["organization_name"],
            **{
                f"contact_information__street_address__{name}": value
                for name, value in contact["street_address"].items()
            },
            "industry": info["industry"],
            "timezone": info["timezone"],
            "preferred_currency": info["preferred_currency"],
            "public_api_key": info["public_api_key"],
            "locale": info["locale"],
            "extra_attributes": None,
        }
    ]
    assert [e.path.rstrip("/") for e in emulator.request_log] == ["/api/accounts"]
