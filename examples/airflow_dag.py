"""An Airflow DAG that loads several Klaviyo accounts daily, one task group per account.

Copy it into your DAGs folder next to the `klaviyo` package (from `dlt init klaviyo <destination>`)
and put each account's key in Airflow's dlt secrets, e.g. SOURCES__KLAVIYO__ACCOUNTS__BRAND_A.
Each account's resources are decomposed into parallel tasks ("parallel-isolated"), so the event
tables, the list-member snapshot and the rate-limited fan-outs (flows: 60 requests/minute) run as
separate tasks that can retry on their own.
"""

from datetime import timedelta

import dlt
import pendulum
from airflow.decorators import dag
from dlt.helpers.airflow_helper import PipelineTasksGroup

ACCOUNTS = ("brand_a", "brand_b")


@dag(
    dag_id="load_klaviyo",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "data", "retries": 0, "execution_timeout": timedelta(hours=6)},
)
def load_klaviyo() -> None:
    from klaviyo import klaviyo_source

    for account in ACCOUNTS:
        tasks = PipelineTasksGroup(f"klaviyo_{account}", use_data_folder=False, wipe_local_data=True)
        pipeline = dlt.pipeline(
            pipeline_name=f"klaviyo_{account}",
            dataset_name=f"klaviyo_data_{account}",
            destination="duckdb",
        )
        source = klaviyo_source(api_key=dlt.secrets[f"sources.klaviyo.accounts.{account}"])
        tasks.add_run(pipeline, source, decompose="parallel-isolated", trigger_rule="all_done", retries=0)


load_klaviyo()
