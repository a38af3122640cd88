"""Posts OpenLineage events to a running `heal` with the reference openlineage-python client,
as an Airflow or dbt integration would: a START and a COMPLETE event of an extract job (schema,
SQL, column lineage and data-quality assertions), and a FAIL event of a downstream job. Then
posts an invalid event and checks that the server refuses it with HTTP 400.

Usage: emit_lineage.py BASE_URL   (prints one JSON line per outcome)
With OPENLINEAGE_API_KEY set, the client authenticates with it as a bearer token, as
integrations configure it.
"""
import os
import json
import sys
from datetime import datetime, timezone

import requests
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    column_lineage_dataset,
    data_quality_assertions_dataset,
    error_message_run,
    schema_dataset,
    sql_job,
)
from openlineage.client.transport.http import ApiKeyTokenProvider, HttpConfig, HttpTransport
from openlineage.client.uuid import generate_new_uuid

BASE = sys.argv[1]
PRODUCER = "https://example.com/heal-lineage-test"
NS = "postgres://warehouse:5432"


API_KEY = os.environ.get("OPENLINEAGE_API_KEY")


def client():
    config = HttpConfig(url=BASE, endpoint="api/v1/lineage", timeout=10.0, retry={"total": 0})
    if API_KEY:
        # The key name changed between client versions; give both.
        config.auth = ApiKeyTokenProvider({"api_key": API_KEY, "apiKey": API_KEY})
    return OpenLineageClient(transport=HttpTransport(config))


def schema(*fields):
    return schema_dataset.SchemaDatasetFacet(
        fields=[schema_dataset.SchemaDatasetFacetFields(name=n, type=t) for n, t in fields],
        producer=PRODUCER,
    )


def now():
    return datetime.now(timezone.utc).isoformat()


def main():
    c = client()
    extract = Job(
        namespace="airflow",
        name="shop.extract_orders",
        facets={
            "sql": sql_job.SQLJobFacet(
                query="INSERT INTO public.orders_clean SELECT id, amount FROM public.orders_src WHERE amount >= 0",
                dialect="postgres",
                producer=PRODUCER,
            )
        },
    )
    src = InputDataset(
        namespace=NS,
        name="public.orders_src",
        facets={"schema": schema(("id", "BIGINT"), ("amount", "NUMERIC"))},
        inputFacets={
            "dataQualityAssertions": data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
                assertions=[
                    data_quality_assertions_dataset.Assertion(assertion="not_null", success=True, column="id"),
                    data_quality_assertions_dataset.Assertion(assertion="row_count", success=False),
                ],
                producer=PRODUCER,
            )
        },
    )
    clean = OutputDataset(
        namespace=NS,
        name="public.orders_clean",
        facets={
            "schema": schema(("id", "BIGINT"), ("amount", "NUMERIC")),
            "columnLineage": column_lineage_dataset.ColumnLineageDatasetFacet(
                fields={
                    "amount": column_lineage_dataset.Fields(
                        inputFields=[
                            column_lineage_dataset.InputField(
                                namespace=NS, name="public.orders_src", field="amount"
                            )
                        ],
                        transformationType="IDENTITY",
                        transformationDescription="copied",
                    )
                },
                producer=PRODUCER,
            ),
        },
    )
    run = Run(runId=str(generate_new_uuid()))
    for state in (RunState.START, RunState.COMPLETE):
        c.emit(RunEvent(eventType=state, eventTime=now(), run=run, job=extract,
                        producer=PRODUCER, inputs=[src], outputs=[clean]))
        print(json.dumps({"emitted": state.value, "job": extract.name}))

    report = Job(namespace="airflow", name="shop.revenue_report")
    failed = Run(
        runId=str(generate_new_uuid()),
        facets={"errorMessage": error_message_run.ErrorMessageRunFacet(
            message="division by zero", programmingLanguage="python", producer=PRODUCER)},
    )
    c.emit(RunEvent(eventType=RunState.FAIL, eventTime=now(), run=failed, job=report,
                    producer=PRODUCER,
                    inputs=[InputDataset(namespace=NS, name="public.orders_clean")],
                    outputs=[OutputDataset(namespace=NS, name="public.revenue")]))
    print(json.dumps({"emitted": "FAIL", "job": report.name}))

    # An event the server must refuse: the run id is not a UUID.
    bad = {
        "eventType": "START",
        "eventTime": now(),
        "producer": PRODUCER,
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": "not-a-uuid"},
        "job": {"namespace": "airflow", "name": "shop.broken"},
    }
    headers = {"Authorization": f"Bearer {API_KEY}"} if API_KEY else {}
    resp = requests.post(f"{BASE}/api/v1/lineage", json=bad, headers=headers, timeout=10)
    print(json.dumps({"invalid_status": resp.status_code, "body": resp.json()}))


if __name__ == "__main__":
    main()
