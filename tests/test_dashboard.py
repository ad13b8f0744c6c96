"""The dashboard on the admin home: figures from the database, in a fixed number of queries, escaped."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from dashboard.selectors import NOT_RECORDED, dashboard_get
from inventory.models import ClusterNode, NotebookPod, ResourceQuota, SyncRound
from spawning.models import SpawnRecord
from tests.dashboard_html import tables
from tests.pod_rows import store_pod

pytestmark = pytest.mark.django_db

GPU = "nvidia.com/gpu"
GI = 2**30 * 1000
Result = SpawnRecord.Result


@pytest.fixture
def admin_client(client: Client, django_user_model: Any) -> Client:
    user = django_user_model.objects.create_superuser("operator", "operator@example.org", "x")
    client.force_login(user)
    return client


def spawn(*, days_ago: int = 0, result: str = Result.PROVISIONED, profile: str = "base", **fields: Any) -> SpawnRecord:
    return SpawnRecord.objects.create(
        created_at=timezone.now() - timedelta(days=days_ago), result=result, profile=profile, **fields
    )


def notebook(name: str, *, user: str, image: str, gpu: int = 0, namespace: str = "team-a") -> NotebookPod:
    return NotebookPod.objects.create(
        ref=f"{namespace}:{name}",
        namespace=namespace,
        name=name,
        username=user,
        image=image,
        node_name="node-1",
        cpu=1000,
        memory=GI,
        gpu=gpu * 1000,
        phase="Running",
        started_at=timezone.now() - timedelta(minutes=5),
    )


def cluster(*, gpus_used: int) -> None:
    ClusterNode.objects.create(
        name="node-1", ready=True, allocatable={"cpu": 8000, "memory": 32 * GI, GPU: 4000, "pods": 110_000}
    )
    ClusterNode.objects.create(name="node-2", ready=True, unschedulable=True, allocatable={"cpu": 4000})
    ClusterNode.objects.create(name="gone", allocatable={"cpu": 64000}, missing_since=timezone.now())
    store_pod("team-a:a", "node-1", {"cpu": 2500, GPU: gpus_used * 1000, "memory": 4 * GI})


def test_spawns_per_day_by_result_profile_and_machine_type(admin_client: Client) -> None:
    spawn(days_ago=0, choices={"machine_type": "gpu"})
    spawn(days_ago=0, choices={"machine_type": "gpu"})
    spawn(days_ago=0, result=Result.REFUSED, message="no such image")
    spawn(days_ago=2, profile="spark", result=Result.FAILED, message="apiserver down")
    spawn(days_ago=30)  # outside the window

    html = admin_client.get(reverse("admin:index")).content.decode()
    found = tables(html)
    today = timezone.localdate().isoformat()
    days = {row[0]: row[1:] for row in found["dash-spawns-table"]}
    assert len(days) == 14
    # Columns: provisioned, refused, failed, stopped, total.
    assert days[today] == ["2", "1", "0", "0", "3"]
    assert days[(timezone.localdate() - timedelta(days=2)).isoformat()] == ["0", "0", "1", "0", "1"]
    assert sum(int(row[-1]) for row in days.values()) == 4
    assert found["dash-spawn-groups"] == [
        ["base", "gpu", "2", "0", "0", "0", "2"],
        ["base", NOT_RECORDED, "0", "1", "0", "0", "1"],
        ["spark", NOT_RECORDED, "0", "0", "1", "0", "1"],
    ]
    assert 'id="dash-spawns-chart"' in html and "<title>" in html


def test_refused_and_failed_spawns_show_their_reasons_and_link_to_the_records(admin_client: Client) -> None:
    spawn(result=Result.PROVISIONED)
    refused = spawn(result=Result.REFUSED, message="image: not offered to you", username="jo")
    failed = spawn(result=Result.FAILED, message="cluster: 503 from the apiserver", username="al", server_name="gpu")
    html = admin_client.get(reverse("admin:index")).content.decode()
    rows = tables(html)["dash-problems-table"]
    assert [row[1:] for row in rows] == [
        ["al/gpu", "base", "Failed (cluster error)", "cluster: 503 from the apiserver"],
        ["jo", "base", "Refused (bad choice)", "image: not offered to you"],
    ]
    for record in (refused, failed):
        assert reverse("admin:spawning_spawnrecord_change", args=[record.pk]) in html


def test_running_notebooks_by_profile_image_and_machine_type_join_their_spawns(admin_client: Client) -> None:
    spawn(profile="old", pod_name="jupyter-jo", namespace="team-a", username="jo", days_ago=0)
    # The latest provisioned record of the pod wins; refusals never count.
    spawn(profile="gpu-lab", pod_name="jupyter-jo", namespace="team-a", username="jo", choices={"machine_type": "a100"})
    spawn(profile="refused", pod_name="jupyter-jo", namespace="team-a", username="jo", result=Result.REFUSED)
    # No pod name recorded: the user's server is the link.
    spawn(profile="base", username="al", server_name="")
    notebook("jupyter-jo", user="jo", image="lab:4", gpu=2)
    notebook("jupyter-al", user="al", image="lab:4")
    notebook("jupyter-x", user="unknown", image="")

    found = tables(admin_client.get(reverse("admin:index")).content.decode())
    # Most first, then by name.
    assert found["dash-running-profile-table"] == [
        ["base", "1", "0"],
        ["gpu-lab", "1", "2"],
        [NOT_RECORDED, "1", "0"],
    ]
    assert found["dash-running-image-table"] == [["lab:4", "2", "2"], [NOT_RECORDED, "1", "0"]]
    assert found["dash-running-machine-type-table"] == [[NOT_RECORDED, "2", "0"], ["a100", "1", "2"]]


def test_cpu_memory_and_gpus_in_use_against_capacity(admin_client: Client) -> None:
    cluster(gpus_used=3)
    html = admin_client.get(reverse("admin:index")).content.decode()
    rows = {row[0]: row[1:] for row in tables(html)["dash-usage-table"]}
    # The missing node counts neither way; the cordoned one still has capacity.
    assert rows == {
        "CPU": ["2.50", "12", "vCPU"],
        "Memory": ["4", "32", "GiB"],
        f"GPU ({GPU})": ["3", "4", "GPU"],
    }
    assert "2 present nodes (1 taking new pods)" in html
    board = dashboard_get()
    assert [(u.resource, u.used, u.capacity) for u in board.usage] == [
        ("cpu", 2.5, 12.0),
        ("memory", 4.0, 32.0),
        (GPU, 3.0, 4.0),
    ]


def test_quota_use_per_namespace(admin_client: Client) -> None:
    ResourceQuota.objects.create(
        ref="team-a:q",
        namespace="team-a",
        name="q",
        hard={"requests.cpu": "10", f"requests.{GPU}": "4"},
        used={"requests.cpu": "2500m"},
    )
    ResourceQuota.objects.create(
        ref="old:q", namespace="old", name="q", hard={"pods": "1"}, used={}, missing_since=timezone.now()
    )
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert tables(html)["dash-quotas-table"] == [
        ["team-a", "q", "requests.cpu", "2500m", "10"],
        ["team-a", "q", f"requests.{GPU}", "0", "4"],
    ]
    quota = dashboard_get().quotas[0]
    assert quota.percent == 25.0


def test_inventory_freshness_is_shown(admin_client: Client) -> None:
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert 'data-stale="true"' in html and "Never synced." in html
    now = timezone.now()
    SyncRound.objects.create(
        kind=SyncRound.Kind.FULL, status=SyncRound.Status.COMPLETED, started_at=now, finished_at=now
    )
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert 'data-stale="false"' in html and "Fresh." in html


def test_cluster_and_user_strings_are_escaped_in_tables_and_charts(admin_client: Client) -> None:
    hostile = '<script>alert("x")</script>'
    spawn(result=Result.REFUSED, profile=hostile, message=hostile, username=hostile)
    spawn(pod_name="p", namespace="team-a", username="u", profile=hostile, choices={"machine_type": hostile})
    notebook("p", user="u", image=hostile)
    ResourceQuota.objects.create(ref="ns:q", namespace="ns", name=hostile, hard={"pods": "1"}, used={"pods": "1"})
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html


def test_charts_are_accessible_scalable_svg() -> None:
    from dashboard.templatetags.dashboard import charts

    notebook("a", user="a", image="lab:4")
    rendered = charts(dashboard_get())
    assert set(rendered) == {"spawns", "by_profile", "by_image", "by_machine_type", "usage", "quotas"}
    for chart in rendered.values():
        assert chart.startswith("<svg ") and 'role="img"' in chart and "viewBox=" in chart
        assert "aria-labelledby=" in chart and "<desc " in chart
    assert 'data-label="lab:4" data-value="1"' in rendered["by_image"]


def _fill(size: int) -> None:
    for index in range(size):
        spawn(
            days_ago=index % 5,
            profile=f"p{index % 3}",
            pod_name=f"pod-{index}",
            namespace="team-a",
            username=f"u{index}",
        )
        spawn(result=Result.FAILED, message="x", days_ago=index % 7)
        notebook(f"pod-{index}", user=f"u{index}", image=f"img:{index % 4}", gpu=index % 2)
        ClusterNode.objects.create(name=f"n-{index}", ready=True, allocatable={"cpu": 4000, GPU: 1000})
        store_pod(f"team-a:pod-{index}", f"n-{index}", {"cpu": 1000})
        ResourceQuota.objects.create(
            ref=f"ns-{index}:q", namespace=f"ns-{index}", name="q", hard={"pods": "5"}, used={"pods": "1"}
        )
    SyncRound.objects.create(
        kind=SyncRound.Kind.FULL,
        status=SyncRound.Status.COMPLETED,
        started_at=timezone.now(),
        finished_at=timezone.now(),
    )


@pytest.mark.parametrize("size", [1, 40])
def test_the_figures_take_the_same_queries_however_much_there_is(size: int, django_assert_num_queries) -> None:
    _fill(size)
    # Spawns grouped, problems, notebooks, their spawns, image lifecycle entries, node use, nodes, quotas, freshness.
    with django_assert_num_queries(9):
        board = dashboard_get()
    assert len(board.notebooks) == size
    assert sum(day.total for day in board.days) == 2 * size
    assert sum(t.notebooks for t in board.by_image) == size


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_carry_the_dashboard_figures(client: Client) -> None:
    cluster(gpus_used=3)
    spawn(pod_name="jupyter-jo", namespace="team-a", username="jo", profile="gpu-lab", choices={"machine_type": "a100"})
    spawn(result=Result.REFUSED, profile="gpu-lab", choices={"machine_type": "a100"})
    spawn(days_ago=3)  # not today
    notebook("jupyter-jo", user="jo", image="lab:4", gpu=2)
    notebook("jupyter-al", user="al", image="lab:4")
    ResourceQuota.objects.create(
        ref="team-a:q",
        namespace="team-a",
        name="q",
        hard={"requests.cpu": "10", "requests.memory": "8Gi"},
        used={"requests.cpu": "2500m", "requests.memory": "1Gi"},
    )
    finished = timezone.now() - timedelta(seconds=30)
    SyncRound.objects.create(
        kind=SyncRound.Kind.FULL, status=SyncRound.Status.COMPLETED, started_at=finished, finished_at=finished
    )

    samples = _samples(client.get("/metrics").content.decode())
    running = "optionsportal_notebooks_running"
    assert samples[(running, (("image", "lab:4"), ("machine_type", "a100"), ("profile", "gpu-lab")))] == 1
    assert samples[(running, (("image", "lab:4"), ("machine_type", NOT_RECORDED), ("profile", NOT_RECORDED)))] == 1
    today = "optionsportal_spawns_today"
    assert samples[(today, (("machine_type", "a100"), ("profile", "gpu-lab"), ("result", "provisioned")))] == 1
    assert samples[(today, (("machine_type", "a100"), ("profile", "gpu-lab"), ("result", "refused")))] == 1
    assert sum(value for (name, _), value in samples.items() if name == today) == 2
    assert samples[("optionsportal_compute_requested", (("resource", GPU),))] == 3
    assert samples[("optionsportal_compute_allocatable", (("resource", GPU),))] == 4
    assert samples[("optionsportal_compute_requested", (("resource", "cpu"),))] == 2.5
    assert samples[("optionsportal_compute_allocatable", (("resource", "memory"),))] == 32 * 2**30
    assert samples[("optionsportal_nodes", (("schedulable", "true"),))] == 1
    quota = (("namespace", "team-a"), ("quota", "q"), ("resource", "requests.cpu"))
    assert samples[("optionsportal_quota_used", quota)] == 2.5
    assert samples[("optionsportal_quota_hard", quota)] == 10
    memory = (("namespace", "team-a"), ("quota", "q"), ("resource", "requests.memory"))
    assert samples[("optionsportal_quota_hard", memory)] == 8 * 2**30
    assert 30 <= samples[("optionsportal_inventory_age_seconds", ())] < 60
    assert samples[("optionsportal_inventory_stale", ())] == 0
