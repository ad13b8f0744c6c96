"""Retiring a profile while a user's remembered choice points at it, in a real browser (Debian's Chromium)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from inventory.lifecycle import Lifecycle
from inventory.models import Profile
from spawning.models import RememberedChoices
from tests import admin_browser
from tests.hubapi import TOKEN, make_profile, offer_namespace, prespawn_body

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

browser = admin_browser.browser
operator_page = admin_browser.operator_page


def test_retiring_a_profile_moves_a_remembered_choice_to_its_successor(
    operator_page: Page, live_server, settings, artifacts_dir: Path
) -> None:
    settings.OPTIONS_PORTAL_HUB_TOKEN = TOKEN
    settings.KUBECONFIG = None
    offer_namespace("team-a")
    make_profile("plain", display_name="Plain", default=True)
    old = make_profile("py39", display_name="Python 3.9", image="example.org/py:3.9")
    new = make_profile("py312", display_name="Python 3.12", image="example.org/py:3.12")
    RememberedChoices.objects.create(username="alice", server_name="", choices={"profile": "py39"})
    page = operator_page

    # Before: alice's last choice is preselected.
    preview = f"{live_server.url}/admin/preview/?username=alice&groups=&server_name=&default_namespace=team-a"
    page.goto(preview)
    expect(page.locator("input[name=profile][value=py39]")).to_be_checked()

    page.goto(f"{live_server.url}/admin/inventory/profile/{old.pk}/change/")
    page.select_option("#id_lifecycle", "retired")
    page.click("input[name=_save]")
    expect(page.locator(".errornote")).to_be_visible()
    expect(page.locator(".field-successor .errorlist")).to_contain_text("A retired profile needs a successor")
    page.select_option("#id_lifecycle", "retired")
    page.select_option("#id_successor", label="Python 3.12")
    page.fill("#id_lifecycle_message", "Python 3.9 is out of support.")
    page.screenshot(path=str(artifacts_dir / "lifecycle-1-retire-profile.png"), full_page=True)
    page.click("input[name=_save]")
    expect(page.locator(".messagelist .success")).to_be_visible()
    old.refresh_from_db()
    assert (old.lifecycle, old.successor_id) == (Lifecycle.RETIRED, new.pk)
    expect(page.locator("#result_list")).to_contain_text("retired → Python 3.12")

    # The form alice gets: the retired profile is gone, its successor preselected, a notice names both.
    page.goto(preview)
    form = page.locator("#op-form")
    expect(form.locator("input[name=profile][value=py39]")).to_have_count(0)
    expect(form.locator("input[name=profile][value=py312]")).to_be_checked()
    notice = form.locator(".op-moved")
    expect(notice).to_have_count(1)
    expect(notice).to_contain_text("'Python 3.9' you chose last time is retired; 'Python 3.12' is chosen instead.")
    expect(notice).to_contain_text("Python 3.9 is out of support.")
    assert notice.get_attribute("data-old") == "py39"
    assert notice.get_attribute("data-new") == "py312"
    page.screenshot(path=str(artifacts_dir / "lifecycle-2-form-notice.png"), full_page=True)

    # The hub asking for the old one anyway: a 400 naming the field and the successor, nothing remembered.
    response = page.request.post(
        f"{live_server.url}/prespawn",
        headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"},
        data=prespawn_body(profile="py39", namespace="team-a"),
    )
    assert response.status == 400
    assert response.json() == {
        "error": "invalid",
        "fields": {"profile": ["The profile 'py39' is retired; use 'py312' instead."]},
    }
    assert RememberedChoices.objects.get(username="alice").choices == {"profile": "py39"}
    assert Profile.objects.filter(lifecycle=Lifecycle.RETIRED).count() == 1
