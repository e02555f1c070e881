"""Streams that need more than a row of settings: reviews (incremental without a server-side filter).

Registered in `klaviyo_source` by `more_data_resources`.
"""

from typing import Any, Callable, Iterator, List

import dlt
from dlt.common.typing import TDataItem
from dlt.extract.incremental import Incremental
from dlt.sources import DltResource

from .client import KlaviyoClient
from .settings import STREAMS


def more_data_resources(client: KlaviyoClient, window: Callable[[str], Incremental[Any]]) -> List[DltResource]:
    """The opt-in tables of the account data beyond the original connector's (see README)."""
    from . import _resource  # the package's factory; imported here, as the package imports this module

    return [_resource("reviews", review_rows, client, window("updated"))]


def review_rows(client: KlaviyoClient, cursor: Incremental[Any]) -> Iterator[TDataItem]:
    """Reviews updated since the last run, newest first.

    Klaviyo sorts reviews by `updated` but filters them only on `created`, so the read goes back in
    time page by page and stops after the first page that reaches past the cursor: an unchanged
    account costs one request. dlt's incremental drops the rows of that page it already has.
    """
    from . import _bounds, to_row

    yield dlt.mark.materialize_table_schema()
    stream = STREAMS["reviews"]
    since, _ = _bounds(cursor)
    pages = client.paginate(stream.endpoint, stream.params)
    try:
        for page in pages:
            rows = [to_row(item, stream.cursor) for item in page.data]
            yield rows
            if since is not None and rows and rows[-1]["updated"] < since:
                break
    finally:
        pages.close()  # type: ignore[attr-defined]
