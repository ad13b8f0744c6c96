"""POST /prespawn runs the same number of SQL queries with 10 or 1,000 of every inventory kind.

The /options side is checked by
tests/test_api_options.py::test_options_data_runs_the_same_number_of_queries_for_10_and_1000_of_each_kind.
Here the whole request is counted, through the view, with a real apiserver
behind it: authentication, validation against the access rules, provisioning
and the records it writes. Validation reads the per-process inventory snapshot,
so it is counted both as it usually runs (the snapshot already built, e.g. by
the /options call before it) and with the snapshot to build.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from inventory.models import (
    AccessRule,
    GafferGraph,
    HdfsInstance,
    NamespaceOption,
    NotebookVolume,
    ServiceAccount,
)
from spawning.models import SpawnRecord
from spawning.snapshot import current_snapshot, forget_snapshot
from tests.hubapi import TOKEN, fill_inventory, hub_client, make_preset, make_profile, offer_namespace, prespawn_body

pytestmark = [pytest.mark.django_db, pytest.mark.kube]


@pytest.fixture(autouse=True)
def hub_token(settings) -> None:
    settings.OPTIONS_PORTAL_HUB_TOKEN = TOKEN


def _everything_in(namespace: str) -> None:
    """The chosen items, in the real namespace, so that a choice of each kind is validated and provisioned."""
    rule = AccessRule.objects.create(name="chosen", groups=["team"])
    rule.hdfs_instances.add(
        HdfsInstance.objects.create(
            key=f"{namespace}:hdfs", namespace=namespace, name="hdfs", observed_url="hdfs://nn.hdfs.svc:8020"
        )
    )
    # In the notebook's own namespace the graph is mounted directly: no copies to read from the cluster.
    rule.gaffer_graphs.add(
        GafferGraph.objects.create(
            key=f"{namespace}:graph",
            namespace=namespace,
            name="graph",
            observed_url=f"http://graph-api.{namespace}.svc:80/rest",
            graph_config_map="graph-graph-config",
            schema_config_map="graph-schema",
            store_secret="graph-store-properties",
        )
    )
    rule.service_accounts.add(
        ServiceAccount.objects.create(key=f"{namespace}:notebook", namespace=namespace, name="notebook")
    )
    NotebookVolume.objects.create(
        key=f"{namespace}:home", namespace=namespace, name="home", owner_username="alice", volume_name="home"
    )


def _prespawn(namespace: str, server_name: str, *, warm: bool) -> int:
    body = prespawn_body(
        profile="full",
        namespace=namespace,
        server_name=server_name,
        hdfs=f"{namespace}:hdfs",
        gaffer_graph=f"{namespace}:graph",
        k8s_service_account=f"{namespace}:notebook",
        volume=f"{namespace}:home",
        resources_cpu="1",
        spark_cpu="1",
    )
    body["groups"] = ["team"]
    client = hub_client()
    if warm:
        current_snapshot()
    else:
        forget_snapshot()
    with CaptureQueriesContext(connection) as captured:
        response = client.post("/prespawn", body, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["namespace"] == namespace
    return len(captured.captured_queries)


def test_prespawn_runs_the_same_number_of_queries_for_10_and_1000_of_each_kind(kube, namespace: str) -> None:
    offer_namespace(namespace)
    make_profile("full", enable_hdfs=True, enable_gaffer=True, enable_spark=True)
    make_preset("small", default=True)
    _everything_in(namespace)

    fill_inventory(10, start=0, prefix="qc")
    small = _prespawn(namespace, "small", warm=True)
    small_cold = _prespawn(namespace, "small-cold", warm=False)
    fill_inventory(990, start=10, prefix="qc")
    assert NamespaceOption.objects.count() == 1001
    assert ServiceAccount.objects.count() == NotebookVolume.objects.count() == 1001
    large = _prespawn(namespace, "large", warm=True)
    large_cold = _prespawn(namespace, "large-cold", warm=False)

    assert large == small
    assert large_cold == small_cold
    assert small <= 11
    assert SpawnRecord.objects.filter(result=SpawnRecord.Result.PROVISIONED).count() == 4
