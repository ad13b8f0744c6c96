"""Object names and label values: DNS-safe for any username and server name, and never shared by two users."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kube import names
from spawning.provisioning import spark_ui_ingress_name

PREFIXES = ("jhub-hadoop-config", "jhub-gaffer-graph-config", "jhub-gaffer-schema", "jhub-gaffer-store")

# Text that often lands near a collision: case, dots, @, hyphens, runs of them, and non-ASCII.
tricky = st.text(alphabet="aAbB09-.@_ éÉ日", max_size=90)
anything = st.text(max_size=120)
usernames = st.one_of(tricky, anything, st.from_regex(r"[a-z0-9]{1,70}", fullmatch=True))
server_names = st.one_of(st.just(""), tricky, anything, st.from_regex(r"[a-z0-9-]{1,40}", fullmatch=True))


def _valid_name(name: str) -> bool:
    return len(name) <= 63 and bool(names.DNS1123_LABEL.match(name))


def test_plain_names_stay_as_the_original_made_them() -> None:
    assert names.object_name("jhub-hadoop-config", "alice") == "jhub-hadoop-config-alice"
    assert names.object_name("jhub-hadoop-config", "alice", "gpu-2") == "jhub-hadoop-config-alice-gpu-2"
    assert names.label_value("alice") == "alice"
    assert names.label_value("jo-smith") == "jo-smith"
    assert names.label_value("") == ""
    assert names.service_name("jupyter-alice") == "jupyter-alice"


def test_dotted_and_plain_lookalikes_differ() -> None:
    dotted = names.object_name("jhub-hadoop-config", "Jo.Smith@x")
    plain = names.object_name("jhub-hadoop-config", "jo-smith-x")
    assert dotted != plain
    assert _valid_name(dotted) and _valid_name(plain)
    assert dotted.startswith("jhub-hadoop-config-jo-smith-x--")
    assert names.label_value("Jo.Smith@x") != names.label_value("jo-smith-x")


def test_user_and_server_cannot_be_shuffled_into_another_pair() -> None:
    pairs = [("jo", "smith"), ("jo-smith", ""), ("jo-smith", "x"), ("jo", "smith-x"), ("josmith", "")]
    made = {names.object_name("jhub-spark-config", user, server) for user, server in pairs}
    assert len(made) == len(pairs)
    assert all(_valid_name(name) for name in made)


def test_hashed_form_cannot_be_claimed_by_a_plain_username() -> None:
    victim_label = names.label_value("Jo.Smith@x")
    victim_name = names.object_name("jhub-spark-config", "Jo.Smith@x")
    # Someone whose raw name spells out the victim's hashed form does not get it.
    assert names.label_value(victim_label) != victim_label
    claimed = victim_name.removeprefix("jhub-spark-config-")
    assert names.object_name("jhub-spark-config", claimed) != victim_name
    user, _, server = claimed.partition("-")
    assert names.object_name("jhub-spark-config", user, server) != victim_name


def test_eighty_characters_with_capitals_dots_and_at() -> None:
    username = ("Jo.Smith@Example.ORG" * 4)[:80]
    other = username[:-1] + "Q"
    for prefix in PREFIXES:
        name = names.object_name(prefix, username, "My Server")
        assert _valid_name(name)
        assert name != names.object_name(prefix, other, "My Server")
        assert name != names.object_name(prefix, username, "my-server")
    assert len(names.label_value(username)) <= 63
    assert names.LABEL_VALUE.match(names.label_value(username))


def test_service_names_start_with_a_letter() -> None:
    for pod_name in ("9-jupyter", "jupyter--41lice", "x" * 80, "jupyter-" + "é" * 10, ""):
        service = names.service_name(pod_name)
        assert names.DNS1035_LABEL.match(service), service
        assert len(service) <= 63


def test_templates_use_safe_names() -> None:
    assert (
        names.expand_template("{{USERNAME}}-{{SERVERNAME}}.spark.example.org", username="Jo.Smith", server_name="gpu")
        == f"{names.label_value('Jo.Smith')}-gpu.spark.example.org"
    )


def test_spark_ui_ingress_name_is_a_name_like_the_rest() -> None:
    from tests.plans import basic_plan

    assert spark_ui_ingress_name(basic_plan("ns", username="Jo.Smith@x", server_name="gpu")).startswith(
        "jhub-spark-ui-jo-smith-x-gpu--"
    )


@settings(max_examples=200, deadline=None)
@given(first=st.tuples(usernames, server_names), second=st.tuples(usernames, server_names))
def test_any_two_notebooks_get_valid_distinct_names(first: tuple[str, str], second: tuple[str, str]) -> None:
    for prefix in PREFIXES:
        a, b = names.object_name(prefix, *first), names.object_name(prefix, *second)
        assert _valid_name(a) and _valid_name(b)
        assert (a == b) == (first == second)


@settings(max_examples=200, deadline=None)
@given(first=st.one_of(usernames, server_names), second=st.one_of(usernames, server_names))
def test_any_two_values_get_valid_distinct_labels(first: str, second: str) -> None:
    a, b = names.label_value(first), names.label_value(second)
    for value in (a, b):
        assert len(value) <= 63
        assert names.LABEL_VALUE.match(value)
        assert value == "" or names.DNS1123_LABEL.match(value)
    assert (a == b) == (first == second)
    assert (names.service_name(first) == names.service_name(second)) == (first == second)
    assert names.DNS1035_LABEL.match(names.service_name(first))


def test_volume_owner_labels_keep_valid_raw_names() -> None:
    assert names.owner_label_value("Jo.Smith") == "Jo.Smith"
    assert names.owner_label_value("") == ""
    assert names.owner_label_value("jo@x") == names.label_value("jo@x")
    victim = names.owner_label_value("jo@x")
    assert names.owner_label_value(victim) != victim


@settings(max_examples=200, deadline=None)
@given(first=usernames, second=usernames)
def test_volume_owner_labels_are_valid_and_distinct(first: str, second: str) -> None:
    a, b = names.owner_label_value(first), names.owner_label_value(second)
    assert len(a) <= 63 and names.LABEL_VALUE.match(a)
    assert (a == b) == (first == second)
