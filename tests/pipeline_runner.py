"""Runs one load in its own process, so tests can kill it or read everything it prints.

    python tests/pipeline_runner.py <base_url> <work_dir> [resource,resource]

The API key comes from SOURCES__KLAVIYO__API_KEY, as a user's would.
"""

import sys
from pathlib import Path

import dlt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from klaviyo import klaviyo_source  # noqa: E402


def main() -> None:
    base_url, work_dir = sys.argv[1], Path(sys.argv[2])
    source = klaviyo_source(base_url=base_url)
    if len(sys.argv) > 3:
        source = source.with_resources(*sys.argv[3].split(","))
    pipeline = dlt.pipeline(
        pipeline_name="klaviyo_runner",
        pipelines_dir=str(work_dir / "pipelines"),
        destination=dlt.destinations.duckdb(str(work_dir / "klaviyo.duckdb")),
        dataset_name="klaviyo_data",
    )
    print(pipeline.run(source))


if __name__ == "__main__":
    main()
