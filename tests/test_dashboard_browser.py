"""The dashboard in a real browser (Debian's Chromium): charts drawn, figures as stored, usable at 360 px."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from dashboard.selectors import NOT_RECORDED
from inventory.models import ClusterNode, NotebookPod, PodRequest, ResourceQuota, SyncRound
from spawning.models import SpawnRecord
from tests import admin_browser

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
    NotebookPod.objects.create(ref="team-b:jupyter-x", namespace="team-b", name="jupyter-x", image="lab:4")
    ClusterNode.objects.create(name="gpu-1", ready=True, allocatable={"cpu": 32000, "memory": 128 * GI, GPU: 4000})
    for index in range(3):
        PodRequest.objects.create(pod=f"team-a:jupyter-user{index}", node_name="gpu-1", resource=GPU, amount=1000)
        PodRequest.objects.create(pod=f"team-a:jupyter-user{index}", node_name="gpu-1", resource="cpu", amount=4000)
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
