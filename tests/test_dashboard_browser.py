"""The dashboard in a real browser (Debian's Chromium): charts drawn, figures as stored, usable at 360 px."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from dashboard.selectors import NOT_RECORDED
from inventory.lifecycle import Lifecycle
from inventory.models import ClusterNode, ImageLifecycle, NotebookPod, PodRequest, ResourceQuota, SyncRound
from spawning.models import SpawnRecord
from tests import admin_browser
from tests.pod_rows import store_pod

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The logged-in admin page and the browser, as the admin's browser tests make them.
browser = admin_browser.browser
operator_page = admin_browser.operator_page

GPU = "nvidia.com/gpu"
GI = 2**30 * 1000


def _data() -> None:
    now = timezone.now()
    for days_ago, result, profile, count in (
        (0, "provisioned", "gpu-lab", 3),
        (0, "refused", "gpu-lab", 1),
        (1, "provisioned", "base", 5),
        (3, "failed", "spark", 2),
        (6, "provisioned", "base", 2),
    ):
        for index in range(count):
            SpawnRecord.objects.create(
                created_at=now - timedelta(days=days_ago, minutes=index),
                username=f"user{index}",
                pod_name=f"jupyter-user{index}" if days_ago == 0 else "",
                namespace="team-a",
                profile=profile,
                choices={"machine_type": "a100"} if profile == "gpu-lab" else {},
                result=result,
                message="image: not offered to you" if result == "refused" else "cluster: apiserver 503",
            )
    for index in range(3):
        NotebookPod.objects.create(
            ref=f"team-a:jupyter-user{index}",
            namespace="team-a",
            name=f"jupyter-user{index}",
            username=f"user{index}",
            image="registry.example.org/notebooks/gpu-lab:2024.10",
            node_name="gpu-1",
            gpu=1000,
            started_at=now,
        )
    NotebookPod.objects.create(
        ref="team-b:jupyter-x", namespace="team-b", name="jupyter-x", username="xi", image="lab:4", node_name="cpu-1"
    )
    ImageLifecycle.objects.create(pattern="lab:4", lifecycle=Lifecycle.RETIRED, successor_image="lab:5")
    ClusterNode.objects.create(name="gpu-1", ready=True, allocatable={"cpu": 32000, "memory": 128 * GI, GPU: 4000})
    for index in range(3):
        store_pod(f"team-a:jupyter-user{index}", "gpu-1", {GPU: 1000, "cpu": 4000})
    ResourceQuota.objects.create(
        ref="team-a:compute",
        namespace="team-a",
        name="compute",
        hard={"requests.cpu": "16", f"requests.{GPU}": "4"},
        used={"requests.cpu": "12", f"requests.{GPU}": "3"},
    )
    SyncRound.objects.create(
        kind=SyncRound.Kind.FULL, status=SyncRound.Status.COMPLETED, started_at=now, finished_at=now
    )


def _cells(page: Page, selector: str) -> list[list[str]]:
    return page.eval_on_selector_all(
        f"{selector} tbody tr",
        "rows => rows.map(r => Array.from(r.children).map(c => c.textContent.trim().replace(/\\s+/g, ' ')))",
    )


def _figures_match_the_database(page: Page) -> None:
    """What the browser shows, against the stored rows themselves (not the figures the test wrote down)."""
    today = timezone.localdate()
    recent = [
        record
        for record in SpawnRecord.objects.all()
        if (today - timezone.localdate(record.created_at)).days < len(_cells(page, "#dash-spawns-table"))
    ]
    per_group = Counter((r.profile, (r.choices or {}).get("machine_type") or NOT_RECORDED) for r in recent)
    assert {(row[0], row[1]): int(row[-1]) for row in _cells(page, "#dash-spawn-groups")} == per_group
    per_day = Counter(timezone.localdate(r.created_at).isoformat() for r in recent)
    shown_days = {row[0]: int(row[-1]) for row in _cells(page, "#dash-spawns-table")}
    assert {day: total for day, total in shown_days.items() if total} == per_day
    per_image = Counter(NotebookPod.objects.values_list("image", flat=True))
    assert {row[0]: int(row[1]) for row in _cells(page, "#dash-running-image-table")} == per_image
    chart = page.locator("#dash-running-image-chart g.op-bar-row")
    assert {
        chart.nth(i).get_attribute("data-label"): int(chart.nth(i).get_attribute("data-value") or 0)
        for i in range(chart.count())
    } == per_image
    present = ClusterNode.objects.filter(missing_since__isnull=True)
    cpu_capacity = sum(node.allocatable.get("cpu", 0) for node in present) / 1000
    cpu_used = sum(PodRequest.objects.filter(resource="cpu").values_list("amount", flat=True)) / 1000
    cpu_row = next(row for row in _cells(page, "#dash-usage-table") if row[0] == "CPU")
    assert (float(cpu_row[1]), float(cpu_row[2])) == (cpu_used, cpu_capacity)
    quotas = [
        [quota.namespace, quota.name, resource, str(quota.used[resource]), str(hard)]
        for quota in ResourceQuota.objects.order_by("namespace", "name")
        for resource, hard in sorted(quota.hard.items())
    ]
    assert _cells(page, "#dash-quotas-table") == quotas


def test_the_dashboard_shows_the_figures_in_charts_and_tables(
    operator_page: Page, live_server, artifacts_dir: Path
) -> None:
    _data()
    page = operator_page
    page.goto(f"{live_server.url}/admin/")
    for chart in ("spawns", "running-profile", "running-image", "running-machine-type", "usage", "quota"):
        expect(page.locator(f"svg#dash-{chart}-chart")).to_be_visible()
    # The spawns chart: one mark per non-zero (day, result), its tooltip naming the count.
    expect(page.locator("#dash-spawns-chart rect")).to_have_count(5)
    today = timezone.localdate().isoformat()
    expect(page.locator("#dash-spawns-chart")).to_contain_text(f"{today} Provisioned: 3")  # a mark's <title>
    expect(page.locator("#dash-spawns-chart")).to_contain_text(f"{today} Refused (bad choice): 1")
    assert _cells(page, "#dash-spawn-groups") == [
        ["base", NOT_RECORDED, "7", "0", "0", "0", "7"],
        ["gpu-lab", "a100", "3", "1", "0", "0", "4"],
        ["spark", NOT_RECORDED, "0", "0", "2", "0", "2"],
    ]
    assert _cells(page, "#dash-running-profile-table") == [["gpu-lab", "3", "3"], [NOT_RECORDED, "1", "0"]]
    assert _cells(page, "#dash-running-machine-type-table") == [["a100", "3", "3"], [NOT_RECORDED, "1", "0"]]
    bars = page.locator("#dash-running-image-chart g.op-bar-row")
    expect(bars).to_have_count(2)
    assert bars.first.get_attribute("data-label") == "registry.example.org/notebooks/gpu-lab:2024.10"
    assert bars.first.get_attribute("data-value") == "3"
    usage = {row[0]: row[1:3] for row in _cells(page, "#dash-usage-table")}
    assert usage == {"CPU": ["12", "32"], "Memory": ["0", "128"], f"GPU ({GPU})": ["3", "4"]}
    assert _cells(page, "#dash-quotas-table") == [
        ["team-a", "compute", "requests.cpu", "12", "16"],
        ["team-a", "compute", f"requests.{GPU}", "3", "4"],
    ]
    problems = _cells(page, "#dash-problems-table")
    assert [row[3] for row in problems] == ["Refused (bad choice)", "Failed (cluster error)", "Failed (cluster error)"]
    expect(page.locator("#dash-freshness-state")).to_contain_text("Fresh.")
    expect(page.locator("#spawn-tools-module")).to_be_visible()
    assert _cells(page, "#dash-old-images-table") == [["xi", "(default)", "lab:4", "cpu-1", "—", "retired", "lab:5"]]
    _figures_match_the_database(page)
    page.screenshot(path=str(artifacts_dir / "dashboard-desktop.png"), full_page=True)

    # A refusal's row links to its record.
    page.locator("#dash-problems-table tbody tr").first.locator("a").click()
    expect(page.locator("#content h2, #content h1").first).to_be_visible()
    assert "/admin/spawning/spawnrecord/" in page.url

    page.set_viewport_size({"width": 360, "height": 800})
    page.goto(f"{live_server.url}/admin/")
    expect(page.locator("svg#dash-spawns-chart")).to_be_visible()
    # Nothing wider than the screen: the charts scale, the wide tables scroll inside their box.
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    chart_width = page.eval_on_selector("#dash-spawns-chart", "svg => svg.getBoundingClientRect().width")
    assert 0 < chart_width <= 360
    page.screenshot(path=str(artifacts_dir / "dashboard-360px.png"), full_page=True)
