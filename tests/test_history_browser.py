"""The history of a changed profile, in a real browser (Debian's Chromium): the operator edits, then reads the diff."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from audit.models import ChangeEntry
from inventory.models import Profile
from tests import admin_browser

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

browser = admin_browser.browser
operator_page = admin_browser.operator_page


def test_the_history_of_a_changed_profile(operator_page: Page, live_server, artifacts_dir: Path) -> None:
    page = operator_page
    profile = Profile.objects.create(slug="minimal", display_name="Minimal", image="jupyter/minimal-notebook:2024")

    page.goto(f"{live_server.url}/admin/inventory/profile/{profile.pk}/change/")
    page.fill("#id_image", "jupyter/minimal-notebook:2025")
    page.check("#id_enable_hdfs")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist .success")).to_be_visible()

    page.goto(f"{live_server.url}/admin/inventory/profile/{profile.pk}/change/")
    page.click("a.historylink")
    table = page.locator("#change-history")
    expect(table).to_be_visible()
    newest = table.locator("tbody tr").first
    expect(newest).to_contain_text("operator")
    expect(newest).to_contain_text("Image:")
    expect(newest).to_contain_text("jupyter/minimal-notebook:2024")
    expect(newest).to_contain_text("jupyter/minimal-notebook:2025")
    expect(newest).to_contain_text("Enable hdfs:")
    expect(table.locator("tbody tr")).to_have_count(2)
    # The page against the stored history: one row per historical record, the newest diff as recorded.
    expect(table.locator("tbody tr")).to_have_count(profile.history.count())
    recorded = ChangeEntry.objects.filter(object_id=str(profile.pk)).order_by("-changed_at", "-id").first()
    assert recorded is not None
    for change in recorded.changes:
        expect(newest).to_contain_text(change["old"])
        expect(newest).to_contain_text(change["new"])
    page.screenshot(path=str(artifacts_dir / "history-profile-1-object-history.png"), full_page=True)

    page.goto(f"{live_server.url}/admin/audit/changeentry/")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(ChangeEntry.objects.count())
    expect(rows.first).to_contain_text("Minimal")
    expect(rows.first).to_contain_text("image")
    expect(rows.first).to_contain_text("operator")
    page.screenshot(path=str(artifacts_dir / "history-profile-2-global-list.png"), full_page=True)
