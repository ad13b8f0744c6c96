"""The spawn form in a real browser (Debian's Chromium), served by the portal through the operator preview."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from django.test import Client
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from spawning.models import RememberedChoices
from tests.form_inventory import EVIL, EVIL_ARN, READER_ARN, build_inventory

# Playwright's sync API keeps an event loop running in this thread; Django would otherwise refuse ORM calls.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def open_form(browser: Browser, live_server) -> Iterator[Callable[..., Page]]:
    """Opens the preview for a user as a logged-in operator; records script errors and dialogs."""
    build_inventory()
    client = Client()
    client.force_login(User.objects.create_user("operator", password="x", is_staff=True))
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
    problems: list[str] = []

    def open_page(width: int = 1100, **query: str) -> Page:
        page = context.new_page()
        page.set_viewport_size({"width": width, "height": 900})
        page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
        page.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
        params = {"username": "alice", "groups": "", "server_name": "", "default_namespace": "team-a", **query}
        page.goto(f"{live_server.url}/admin/preview/?{urlencode(params)}")
        expect(page.locator("#op-form")).to_be_visible()
        return page

    yield open_page
    context.close()
    assert problems == []


def form(page: Page) -> Locator:
    """The spawn form itself: the preview page around it has fields of its own."""
    return page.locator("#op-form")


def option_values(page: Page, select_id: str) -> list[str]:
    return page.locator(f"#{select_id} option").evaluate_all("options => options.map(o => o.value)")


def option_labels(page: Page, select_id: str) -> list[str]:
    return page.locator(f"#{select_id} option").evaluate_all("options => options.map(o => o.textContent)")


def submit_and_read_user_options(page: Page) -> dict[str, list[str]]:
    page.get_by_role("button", name="Start").click()
    return json.loads(page.locator("#op-preview-user-options").text_content() or "{}")


def test_profile_choice_shows_and_hides_sections(open_form, artifacts_dir: Path) -> None:
    page = open_form()
    hdfs, gaffer, spark = (
        page.locator("#op-hdfs-section"),
        page.locator("#op-gaffer-section"),
        page.locator("#op-spark-section"),
    )
    expect(form(page).get_by_label("Python")).to_be_checked()
    for section in (hdfs, gaffer, spark):
        expect(section).to_be_hidden()

    form(page).get_by_label("HDFS tools").check()
    expect(hdfs).to_be_visible()
    expect(gaffer).to_be_hidden()
    expect(spark).to_be_hidden()

    form(page).get_by_label("Gaffer").check()
    expect(hdfs).to_be_visible()
    expect(gaffer).to_be_visible()
    expect(spark).to_be_hidden()

    form(page).get_by_label("PySpark").check()
    expect(spark).to_be_visible()
    expect(hdfs).to_be_hidden()
    expect(gaffer).to_be_hidden()
    expect(page.locator("#op-spark-cpu")).to_be_enabled()
    page.screenshot(path=str(artifacts_dir / "form-spark-profile.png"), full_page=True)

    # Native radios: the keyboard moves between profiles and the sections follow.
    form(page).get_by_label("PySpark").focus()
    page.keyboard.press("ArrowLeft")
    expect(form(page).get_by_label("Gaffer")).to_be_checked()
    expect(gaffer).to_be_visible()
    expect(spark).to_be_hidden()

    # Hidden sections send nothing the server would have to refuse.
    form(page).get_by_label("HDFS tools").check()
    page.locator("#op-hdfs").select_option("team-a:hdfs-main")
    form(page).get_by_label("Python").check()
    sent = submit_and_read_user_options(page)
    assert sent["profile"] == ["python"]
    assert not {"hdfs", "gaffer_graph", "spark_cpu", "spark_mem"} & set(sent)
    assert {"resources_cpu", "resources_mem", "k8s_namespace", "volume", "volume_name", "resources_hdd"} <= set(sent)


def test_changing_namespace_changes_the_accounts_and_volumes_offered(open_form) -> None:
    page = open_form()
    expect(page.locator("#op-k8s-namespace")).to_have_value("team-a")
    assert option_values(page, "op-k8s-service-account") == ["", "team-a:reader", "team-a:writer"]
    assert option_values(page, "op-volume") == ["", "team-a:claim-alice-home"]
    assert option_labels(page, "op-volume") == ["Create a new volume", "home · 10Gi"]

    form(page).get_by_label("Namespace").select_option("team-b")
    assert option_values(page, "op-k8s-service-account") == ["", "team-b:analyst"]
    assert option_labels(page, "op-k8s-service-account") == ["None", "Analyst"]
    assert option_values(page, "op-volume") == ["", "team-b:claim-alice-data"]
    assert option_labels(page, "op-volume") == ["Create a new volume", "data · 20Gi · server lab"]
    expect(page.locator("#op-k8s-namespace-help")).to_have_text("Team B's projects")

    form(page).get_by_label("Namespace").select_option("team-a")
    assert option_values(page, "op-k8s-service-account") == ["", "team-a:reader", "team-a:writer"]


def test_choosing_an_account_shows_its_iam_role_and_console_link(open_form) -> None:
    page = open_form()
    info = page.locator("#op-sa-info")
    expect(info).to_be_hidden()

    form(page).get_by_label("Service account").select_option("team-a:reader")
    expect(info).to_be_visible()
    expect(page.locator("#op-sa-role-name")).to_have_text("team-a-reader")
    expect(page.locator("#op-sa-role-arn")).to_have_text(READER_ARN)
    link = page.get_by_role("link", name="Open the role in the AWS console")
    expect(link).to_have_attribute("href", "https://console.aws.amazon.com/iam/home#/roles/team-a-reader")
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", "noopener noreferrer")

    form(page).get_by_label("Namespace").select_option("team-b")
    form(page).get_by_label("Service account").select_option("team-b:analyst")
    expect(page.locator("#op-sa-norole")).to_have_text("This account has no IAM role.")
    expect(page.locator("#op-sa-role")).to_be_hidden()

    form(page).get_by_label("Service account").select_option("")
    expect(info).to_be_hidden()


def test_presets_fill_values_and_out_of_bounds_values_are_flagged(open_form, artifacts_dir: Path) -> None:
    page = open_form()
    cpu, mem = form(page).get_by_label("CPU (vCPU)", exact=True), form(page).get_by_label("Memory (MB)", exact=True)
    expect(form(page).get_by_label("Small")).to_be_checked()
    expect(cpu).to_have_value("0.25")
    expect(cpu).to_have_attribute("min", "0.1")
    expect(cpu).to_have_attribute("max", "4")
    expect(page.locator("#op-resources-cpu-bounds")).to_have_text("0.1 to 4 vCPU")

    form(page).get_by_label("Medium").check()
    expect(cpu).to_have_value("1")
    expect(mem).to_have_value("2048")
    expect(form(page).get_by_label("Size (GB)")).to_have_value("20")
    form(page).get_by_label("PySpark").check()
    expect(form(page).get_by_label("Spark executor CPU (vCPU)")).to_have_value("2")
    expect(form(page).get_by_label("Spark executor memory (MB)")).to_have_value("1024")

    cpu.fill("9")
    expect(form(page).get_by_label("Custom")).to_be_checked()
    assert page.locator("#op-resources-cpu:invalid").count() == 1
    assert cpu.evaluate("input => input.validationMessage") == "CPU must be between 0.1 and 4 vCPU"
    expect(page.locator("#op-resources-cpu-error")).to_have_text("CPU must be between 0.1 and 4 vCPU")
    mem.fill("100")
    assert mem.evaluate("input => input.validationMessage") == "Memory must be between 256 and 16384 MB"
    page.screenshot(path=str(artifacts_dir / "form-invalid-values.png"), full_page=True)

    # The browser refuses to submit while a value is out of bounds.
    page.get_by_role("button", name="Start").click()
    expect(page.locator("#op-preview-user-options")).to_have_count(0)

    cpu.fill("1.5")
    mem.fill("3000")
    assert page.locator("#op-form input:invalid").count() == 0
    expect(page.locator("#op-resources-cpu-error")).to_be_hidden()
    sent = submit_and_read_user_options(page)
    assert sent["resource_preset"] == ["custom"]
    assert sent["resources_cpu"] == ["1.5"]
    assert sent["resources_mem"] == ["3000"]


def test_new_volume_fields_show_only_for_a_new_volume(open_form) -> None:
    page = open_form()
    new_volume = page.locator("#op-new-volume")
    expect(form(page).get_by_label("Home volume")).to_have_value("")
    expect(new_volume).to_be_visible()
    expect(form(page).get_by_label("Name", exact=True)).to_have_value("default")
    expect(form(page).get_by_label("Size (GB)")).to_be_enabled()

    form(page).get_by_label("Home volume").select_option("team-a:claim-alice-home")
    expect(new_volume).to_be_hidden()
    expect(form(page).get_by_label("Size (GB)", exact=True)).to_be_disabled()
    sent = submit_and_read_user_options(page)
    assert sent["volume"] == ["team-a:claim-alice-home"]
    assert "volume_name" not in sent
    assert "resources_hdd" not in sent

    form(page).get_by_label("Home volume").select_option("")
    expect(new_volume).to_be_visible()


def test_hostile_inventory_text_renders_as_text_and_never_runs(open_form, artifacts_dir: Path) -> None:
    page = open_form()
    expect(page.locator("#op-profile-group")).to_contain_text(EVIL)

    form(page).get_by_label("Service account").select_option("team-a:writer")
    expect(page.locator("#op-sa-role-arn")).to_have_text(EVIL_ARN)
    expect(page.locator("#op-sa-description")).to_have_text("Writes to the lake")

    form(page).get_by_label("Gaffer").check()
    assert EVIL in option_labels(page, "op-hdfs")
    page.locator("#op-hdfs").select_option("team-a:hdfs-main")
    expect(page.locator("#op-hdfs-description")).to_have_text("The main HDFS")
    form(page).get_by_label("Graph").select_option("team-a:roads")
    expect(page.locator("#op-gaffer-description")).to_have_text(EVIL)
    form(page).get_by_label("Graph").select_option("team-b:ships")
    expect(page.locator("#op-gaffer-description")).to_have_text("Where the ships are")
    form(page).get_by_label("Graph").select_option("team-a:roads")

    # Switching namespace back and forth rebuilds the options from the data again.
    form(page).get_by_label("Namespace").select_option("team-b")
    form(page).get_by_label("Namespace").select_option("team-a")
    form(page).get_by_label("Service account").select_option("team-a:writer")
    expect(page.locator("#op-sa-role-arn")).to_have_text(EVIL_ARN)

    form(page).get_by_label("Graph").focus()
    page.screenshot(path=str(artifacts_dir / "form-hostile-text.png"), full_page=True)
    assert page.evaluate("typeof window.pwned") == "undefined"
    assert page.locator("#op-form img").count() == 0
    assert page.locator("#op-form script").count() == 2


def test_remembered_choices_are_preselected(open_form) -> None:
    RememberedChoices.objects.create(
        username="alice",
        server_name="lab",
        choices={
            "profile": "spark",
            "resource_preset": "custom",
            "resources_cpu": "1.5",
            "resources_mem": "3000",
            "k8s_namespace": "team-b",
            "k8s_service_account": "team-b:analyst",
            "volume": "team-b:claim-alice-data",
            "spark_cpu": "3",
            "spark_mem": "4096",
        },
    )
    page = open_form(server_name="lab", default_namespace="team-a")
    expect(form(page).get_by_label("PySpark")).to_be_checked()
    expect(form(page).get_by_label("Custom")).to_be_checked()
    expect(form(page).get_by_label("CPU (vCPU)", exact=True)).to_have_value("1.5")
    expect(form(page).get_by_label("Memory (MB)", exact=True)).to_have_value("3000")
    expect(form(page).get_by_label("Namespace")).to_have_value("team-b")
    expect(form(page).get_by_label("Service account")).to_have_value("team-b:analyst")
    expect(form(page).get_by_label("Home volume")).to_have_value("team-b:claim-alice-data")
    expect(page.locator("#op-spark-section")).to_be_visible()
    expect(form(page).get_by_label("Spark executor CPU (vCPU)")).to_have_value("3")

    # The same server for another user, and another server of Alice's, start from the defaults.
    other = open_form(server_name="", default_namespace="team-a")
    expect(form(other).get_by_label("Python")).to_be_checked()
    expect(form(other).get_by_label("Small")).to_be_checked()
    expect(form(other).get_by_label("Namespace")).to_have_value("team-a")


@pytest.mark.kube
def test_remembered_choices_round_trip_through_prespawn(open_form, kube, settings) -> None:
    """What a user submits, once /prespawn accepted it, is what the form preselects next time."""
    settings.OPTIONS_PORTAL_HUB_TOKEN = "hub-secret"
    page = open_form(server_name="lab", default_namespace="team-a")
    form(page).get_by_label("Namespace").select_option("team-b")
    form(page).get_by_label("Service account").select_option("team-b:analyst")
    form(page).get_by_label("Home volume").select_option("team-b:claim-alice-data")
    form(page).get_by_label("Large").check()
    form(page).get_by_label("CPU (vCPU)", exact=True).fill("1.5")
    user_options = submit_and_read_user_options(page)

    reply = Client().post(
        "/prespawn",
        data=json.dumps(
            {
                "username": "alice",
                "server_name": "lab",
                "pod_name": "jupyter-alice--lab",
                "default_namespace": "team-a",
                "profile": "python",
                "user_options": user_options,
            }
        ),
        content_type="application/json",
        HTTP_AUTHORIZATION="token hub-secret",
    )
    assert reply.status_code == 200, reply.content
    assert reply.json()["namespace"] == "team-b"

    again = open_form(server_name="lab", default_namespace="team-a")
    expect(form(again).get_by_label("Python")).to_be_checked()
    expect(form(again).get_by_label("Custom")).to_be_checked()
    expect(form(again).get_by_label("CPU (vCPU)", exact=True)).to_have_value("1.5")
    expect(form(again).get_by_label("Memory (MB)", exact=True)).to_have_value("8192")
    expect(form(again).get_by_label("Namespace")).to_have_value("team-b")
    expect(form(again).get_by_label("Service account")).to_have_value("team-b:analyst")
    expect(form(again).get_by_label("Home volume")).to_have_value("team-b:claim-alice-data")


def test_stale_inventory_notice_and_a_narrow_screen(open_form, artifacts_dir: Path) -> None:
    from inventory.models import SyncRound

    SyncRound.objects.all().delete()
    page = open_form(width=360)
    expect(page.locator("#op-stale")).to_contain_text("Inventory may be out of date")
    form(page).get_by_label("Gaffer").check()
    form(page).get_by_label("Service account").select_option("team-a:reader")
    # Nothing in the form is wider than a 360 px phone screen.
    widest = page.locator("#op-form").evaluate(
        "root => Math.max(...[root, ...root.querySelectorAll('*')].map(e => e.getBoundingClientRect().right))"
    )
    assert widest <= 360, widest
    page.locator("#op-form").screenshot(path=str(artifacts_dir / "form-narrow-360.png"))
    wide = open_form(width=1100)
    wide.screenshot(path=str(artifacts_dir / "form-preview.png"), full_page=True)
