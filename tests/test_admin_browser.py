"""Two operator flows in the admin, in a real browser (Debian's Chromium): hiding an instance, adding a preset."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from inventory.models import HdfsInstance, ResourcePreset, Source
from tests import admin_browser

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

browser = admin_browser.browser
operator_page = admin_browser.operator_page


def test_operator_hides_a_discovered_hdfs_instance(operator_page: Page, live_server, artifacts_dir: Path) -> None:
    page = operator_page
    instance = HdfsInstance.objects.create(
        key="analytics:hdfs",
        namespace="analytics",
        name="hdfs",
        source=Source.DISCOVERED,
        observed_url="hdfs://hdfs-namenodes.analytics.svc:8020",
    )
    HdfsInstance.objects.create(
        key="shared:hdfs", namespace="shared", name="hdfs", observed_url="hdfs://hdfs-namenodes.shared.svc:8020"
    )

    page.goto(f"{live_server.url}/admin/inventory/hdfsinstance/")
    expect(page.locator("#result_list")).to_contain_text("analytics:hdfs")
    expect(page.locator(".inventory-freshness")).to_contain_text("never been synced")
    page.screenshot(path=str(artifacts_dir / "admin-hide-1-changelist.png"), full_page=True)

    page.check(f"input[name=_selected_action][value='{instance.pk}']")
    page.select_option("select[name=action]", "hide_entries")
    page.screenshot(path=str(artifacts_dir / "admin-hide-2-action-chosen.png"), full_page=True)
    page.click("button[name=index]")

    expect(page.locator(".messagelist .success")).to_contain_text("1 hidden.")
    page.screenshot(path=str(artifacts_dir / "admin-hide-3-hidden.png"), full_page=True)
    instance.refresh_from_db()
    assert instance.hidden is True
    assert HdfsInstance.objects.get(key="shared:hdfs").hidden is False

    # The change form shows what the cluster reported, read-only, beside the operator's columns.
    page.goto(f"{live_server.url}/admin/inventory/hdfsinstance/{instance.pk}/change/")
    expect(page.locator("#id_hidden")).to_be_checked()
    expect(page.locator(".field-observed_url .readonly")).to_have_text("hdfs://hdfs-namenodes.analytics.svc:8020")
    assert page.locator("#id_observed_url").count() == 0
    expect(page.locator(".deletelink")).to_have_count(0)
    page.screenshot(path=str(artifacts_dir / "admin-hide-4-change-form.png"), full_page=True)


def test_operator_creates_a_preset_with_bounds(operator_page: Page, live_server, artifacts_dir: Path) -> None:
    page = operator_page
    page.goto(f"{live_server.url}/admin/inventory/resourcepreset/add/")
    page.locator("#id_display_name").press_sequentially("Medium")
    # The slug is filled in from the display name by the admin's script.
    expect(page.locator("#id_slug")).to_have_value("medium")
    page.fill("#id_description", "Everyday analysis.")
    page.fill("#id_cpu_min", "0.5")
    page.fill("#id_cpu", "1")
    page.fill("#id_cpu_max", "2")
    page.fill("#id_mem_min", "4096")
    page.fill("#id_mem", "2048")
    page.fill("#id_mem_max", "1024")
    page.screenshot(path=str(artifacts_dir / "admin-preset-1-min-above-max.png"), full_page=True)
    page.click("input[name=_save]")

    expect(page.locator(".errornote")).to_be_visible()
    expect(page.locator(".field-mem_min .errorlist")).to_have_text("The minimum (4096) is above the maximum (1024).")
    page.screenshot(path=str(artifacts_dir / "admin-preset-2-error.png"), full_page=True)
    assert not ResourcePreset.objects.exists()

    page.fill("#id_mem_min", "1024")
    page.fill("#id_mem_max", "8192")
    page.fill("#id_disk_min", "5")
    page.fill("#id_disk", "10")
    page.fill("#id_disk_max", "50")
    page.check("#id_default")
    page.click("input[name=_save]")

    expect(page.locator(".messagelist .success")).to_contain_text("Medium")
    expect(page.locator("#result_list")).to_contain_text("1.00 (0.50 to 2.00)")
    page.screenshot(path=str(artifacts_dir / "admin-preset-3-saved.png"), full_page=True)
    preset = ResourcePreset.objects.get()
    assert (preset.slug, preset.display_name, preset.default) == ("medium", "Medium", True)
    assert (preset.cpu_min, preset.cpu, preset.cpu_max) == (Decimal("0.5"), Decimal("1"), Decimal("2"))
    assert (preset.mem_min, preset.mem, preset.mem_max) == (1024, 2048, 8192)
    assert (preset.disk_min, preset.disk, preset.disk_max) == (5, 10, 50)
