"""The spawn form as the server draws it: field names, initial state, bounds, and escaping."""

from __future__ import annotations

import copy
import json
import re
from html.parser import HTMLParser
from typing import Any

import pytest

from spawning.form import render_options_form
from spawning.selectors import options_data
from tests.form_inventory import EVIL, EVIL_ARN, build_inventory

DATA: dict[str, Any] = {
    "username": "alice",
    "server_name": "lab",
    "profiles": [
        {
            "slug": "python",
            "display_name": "Python",
            "description": "Plain",
            "image": "py:1",
            "default": True,
            "enable_hdfs": False,
            "enable_gaffer": False,
            "enable_spark": False,
        },
        {
            "slug": "everything",
            "display_name": "Everything",
            "description": EVIL,
            "image": "all:1",
            "default": False,
            "enable_hdfs": True,
            "enable_gaffer": True,
            "enable_spark": True,
        },
    ],
    "presets": [
        {
            "slug": "small",
            "display_name": "Small",
            "description": "",
            "default": True,
            "cpu": 0.25,
            "mem": 512,
            "spark_cpu": 1.0,
            "spark_mem": 512,
            "disk": 10,
        },
        {
            "slug": "large",
            "display_name": "Large",
            "description": "",
            "default": False,
            "cpu": 2.0,
            "mem": 8192,
            "spark_cpu": 2.0,
            "spark_mem": 2048,
            "disk": 50,
        },
    ],
    "bounds": {
        "cpu": {"min": 0.1, "max": 4.0},
        "mem": {"min": 256, "max": 16384},
        "spark_cpu": {"min": 0.1, "max": 4.0},
        "spark_mem": {"min": 256, "max": 16384},
        "disk": {"min": 1, "max": 100},
    },
    "namespaces": [{"name": "team-a", "description": "A"}, {"name": "team-b", "description": "B"}],
    "service_accounts": [
        {
            "id": "team-a:writer",
            "namespace": "team-a",
            "name": "writer",
            "label": "Writer",
            "description": "",
            "role_arn": EVIL_ARN,
            "role_name": "x",
            "role_console_url": "https://console.aws.amazon.com/iam/home#/roles/x",
        },
        {
            "id": "team-b:analyst",
            "namespace": "team-b",
            "name": "analyst",
            "label": "Analyst",
            "description": "",
            "role_arn": "",
            "role_name": "",
            "role_console_url": "",
        },
    ],
    "volumes": [
        {
            "id": "team-a:claim-home",
            "namespace": "team-a",
            "name": "claim-home",
            "volume_name": "home",
            "server_name": "",
            "capacity": "10Gi",
        },
        {
            "id": "team-b:claim-data",
            "namespace": "team-b",
            "name": "claim-data",
            "volume_name": "data",
            "server_name": "lab",
            "capacity": "20Gi",
        },
    ],
    "hdfs": [{"id": "team-a:hdfs", "label": EVIL, "description": "", "url": "hdfs://h:9820"}],
    "gaffer_graphs": [{"id": "team-a:roads", "label": "Roads", "description": EVIL, "url": "http://r/rest"}],
    "selected": {
        "profile": "python",
        "resource_preset": "small",
        "resources_cpu": "0.25",
        "resources_mem": "512",
        "k8s_namespace": "team-a",
        "volume": "",
        "volume_name": "lab",
        "resources_hdd": "10",
        "k8s_service_account": "",
        "hdfs": "",
        "gaffer_graph": "",
        "spark_cpu": "1.0",
        "spark_mem": "512",
    },
    "inventory": {"last_synced_at": "2024-01-01T00:00:00+00:00", "stale": False},
}


class FormParser(HTMLParser):
    """Collects the controls of the rendered form, the fieldsets around them, and every id."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, Any]] = []
        self.ids: list[str] = []
        self.fieldsets: list[dict[str, str | None]] = []
        self.labels_for: list[str] = []
        self._select: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if "id" in attributes:
            self.ids.append(attributes["id"] or "")
        if tag == "fieldset":
            self.fieldsets.append(attributes)
        elif tag == "label" and attributes.get("for"):
            self.labels_for.append(attributes["for"] or "")
        elif tag in ("input", "select"):
            control = {
                "tag": tag,
                "attrs": attributes,
                "fieldsets": [dict(f) for f in self.fieldsets],
                "options": [],
            }
            self.controls.append(control)
            if tag == "select":
                self._select = control
        elif tag == "option" and self._select is not None:
            self._select["options"].append(attributes)

    def handle_endtag(self, tag: str) -> None:
        if tag == "fieldset":
            self.fieldsets.pop()
        elif tag == "select":
            self._select = None


def parse(html: str) -> FormParser:
    parser = FormParser()
    parser.feed(html)
    return parser


def named(parser: FormParser, name: str) -> list[dict[str, Any]]:
    return [c for c in parser.controls if c["attrs"].get("name") == name]


def submitted_when_rendered(control: dict[str, Any]) -> bool:
    return not any("disabled" in f for f in control["fieldsets"])


def test_every_original_field_name_and_the_preset_are_in_the_form() -> None:
    parser = parse(render_options_form(DATA))
    for name in (
        "profile",
        "resource_preset",
        "resources_cpu",
        "resources_mem",
        "k8s_namespace",
        "volume",
        "volume_name",
        "resources_hdd",
        "k8s_service_account",
        "hdfs",
        "gaffer_graph",
        "spark_cpu",
        "spark_mem",
    ):
        assert named(parser, name), name
    assert [c["attrs"]["value"] for c in named(parser, "profile")] == ["python", "everything"]
    assert [c["attrs"]["value"] for c in named(parser, "resource_preset")] == ["small", "large", "custom"]


def test_ids_are_prefixed_unique_and_every_control_has_a_label() -> None:
    parser = parse(render_options_form(DATA))
    assert len(parser.ids) == len(set(parser.ids))
    assert all(i.startswith(("op-", "options-portal-")) for i in parser.ids), parser.ids
    for control in parser.controls:
        assert control["attrs"]["id"] in parser.labels_for, control["attrs"]["id"]


def test_initial_state_follows_the_selected_choices_before_any_script_runs() -> None:
    data = copy.deepcopy(DATA)
    data["selected"].update(
        profile="everything",
        resource_preset="custom",
        resources_cpu="1.5",
        k8s_namespace="team-b",
        k8s_service_account="team-b:analyst",
        volume="team-b:claim-data",
        hdfs="team-a:hdfs",
        gaffer_graph="team-a:roads",
    )
    parser = parse(render_options_form(data))
    checked = {c["attrs"]["name"]: c["attrs"]["value"] for c in parser.controls if "checked" in c["attrs"]}
    assert checked == {"profile": "everything", "resource_preset": "custom"}
    assert named(parser, "resources_cpu")[0]["attrs"]["value"] == "1.5"

    def selected_option(name: str) -> str:
        options = named(parser, name)[0]["options"]
        return next(o["value"] for o in options if "selected" in o)

    assert selected_option("k8s_namespace") == "team-b"
    assert selected_option("k8s_service_account") == "team-b:analyst"
    assert selected_option("volume") == "team-b:claim-data"
    assert selected_option("hdfs") == "team-a:hdfs"
    assert selected_option("gaffer_graph") == "team-a:roads"
    # Only the chosen namespace's accounts and volumes are offered.
    assert [o["value"] for o in named(parser, "k8s_service_account")[0]["options"]] == ["", "team-b:analyst"]
    assert [o["value"] for o in named(parser, "volume")[0]["options"]] == ["", "team-b:claim-data"]
    # The profile enables every section; an existing volume needs no new-volume fields.
    for name in ("hdfs", "gaffer_graph", "spark_cpu", "spark_mem"):
        assert submitted_when_rendered(named(parser, name)[0]), name
    for name in ("volume_name", "resources_hdd"):
        assert not submitted_when_rendered(named(parser, name)[0]), name


def test_sections_the_profile_does_not_enable_are_hidden_and_disabled() -> None:
    parser = parse(render_options_form(DATA))
    for name in ("hdfs", "gaffer_graph", "spark_cpu", "spark_mem"):
        control = named(parser, name)[0]
        assert not submitted_when_rendered(control), name
        assert any("hidden" in f for f in control["fieldsets"]), name
    for name in ("profile", "resources_cpu", "k8s_namespace", "volume", "volume_name", "resources_hdd"):
        assert submitted_when_rendered(named(parser, name)[0]), name


def test_a_preset_shows_as_chosen_only_when_the_remembered_values_are_its_own() -> None:
    data = copy.deepcopy(DATA)
    data["selected"].update(resource_preset="small", resources_cpu="3")
    parser = parse(render_options_form(data))
    checked = [c["attrs"]["value"] for c in named(parser, "resource_preset") if "checked" in c["attrs"]]
    assert checked == ["custom"]
    assert named(parser, "resources_cpu")[0]["attrs"]["value"] == "3"


def test_bounds_are_attributes_and_text() -> None:
    html = render_options_form(DATA)
    cpu = named(parse(html), "resources_cpu")[0]["attrs"]
    assert (cpu["min"], cpu["max"], cpu["type"]) == ("0.1", "4", "number")
    mem = named(parse(html), "resources_mem")[0]["attrs"]
    assert (mem["min"], mem["max"], mem["step"]) == ("256", "16384", "1")
    assert "0.1 to 4 vCPU" in html
    assert "256 to 16384 MB" in html


def test_hostile_text_is_escaped_in_markup_and_in_the_json() -> None:
    html = render_options_form(DATA)
    assert "<script>window.pwned" not in html
    assert "<img src=x" not in html
    assert "&lt;/script&gt;&lt;script&gt;window.pwned=1&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&quot;window.pwned=2&quot;&gt;" in html
    # Exactly one data script and one code script: the hostile </script> never closed one early.
    assert html.count("<script") == 2
    assert html.count("</script>") == 2
    match = re.search(r'<script id="options-portal-data" type="application/json">(.*?)</script>', html, re.S)
    assert match is not None
    assert json.loads(match.group(1)) == DATA


def test_stale_inventory_is_announced() -> None:
    assert "Inventory may be out of date" not in render_options_form(DATA)
    data = copy.deepcopy(DATA)
    data["inventory"] = {"last_synced_at": None, "stale": True}
    assert "Inventory may be out of date (never synced)" in render_options_form(data)
    data["inventory"] = {"last_synced_at": "2024-05-06T07:08:09+00:00", "stale": True}
    assert "Inventory may be out of date (last synced 2024-05-06 07:08 UTC)" in render_options_form(data)


def test_a_console_link_that_is_not_https_is_never_rendered() -> None:
    data = copy.deepcopy(DATA)
    data["selected"]["k8s_service_account"] = "team-a:writer"
    data["service_accounts"][0]["role_console_url"] = "javascript:alert(1)"
    html = render_options_form(data)
    assert "javascript:alert" not in html.split('<script id="options-portal-data"')[0]


@pytest.mark.django_db
def test_the_form_draws_from_the_portal_inventory() -> None:
    build_inventory()
    data = options_data(username="alice", server_name="", groups=[], default_namespace="team-a")
    html = render_options_form(data)
    parser = parse(html)
    assert [c["attrs"]["value"] for c in named(parser, "profile")] == ["python", "hdfs-only", "gaffer", "spark"]
    assert [o["value"] for o in named(parser, "k8s_service_account")[0]["options"]] == [
        "",
        "team-a:reader",
        "team-a:writer",
    ]
    # Bob's volume in the same namespace is not Alice's to pick.
    assert [o["value"] for o in named(parser, "volume")[0]["options"]] == ["", "team-a:claim-alice-home"]
    assert EVIL not in html
