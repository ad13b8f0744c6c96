"""The history of a changed profile, in a real browser (Debian's Chromium): the operator edits, then reads the diff."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Browser, Page, expect, sync_playwright

from audit.models import ChangeEntry
from inventory.models import Profile

# Playwright's sync API keeps an event loop running in this thread; Django would otherwise refuse ORM calls.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def operator_page(browser: Browser, live_server, settings) -> Iterator[Page]:
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    settings.SECURE_SSL_REDIRECT = False
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    User.objects.create_superuser("operator", "operator@example.org", PASSWORD)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#user-tools")).to_contain_text("operator")
    yield page
    context.close()
    assert errors == []


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
    page.screenshot(path=str(artifacts_dir / "history-profile-1-object-history.png"), full_page=True)

    page.goto(f"{live_server.url}/admin/audit/changeentry/")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(ChangeEntry.objects.count())
    expect(rows.first).to_contain_text("Minimal")
    expect(rows.first).to_contain_text("image")
    expect(rows.first).to_contain_text("operator")
    page.screenshot(path=str(artifacts_dir / "history-profile-2-global-list.png"), full_page=True)
