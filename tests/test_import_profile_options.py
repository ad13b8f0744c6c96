"""A Zero to JupyterHub values file with a GPU profile and profile_options, imported, then offered and spawned.

The fixture (tests/fixtures/z2jh-gpu-values.yaml) is in the chart's and KubeSpawner's
shapes. What the import makes of it (machine types, profile options) is checked,
then the spawn form and the /prespawn reply (version 2) a user gets from it,
against the real apiserver, with the replies checked against /api/schema/.
"""

from __future__ import annotations

from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from inventory.models import ClusterNode, GuaranteePolicy, MachineType, Profile, ProfileOption
from spawning.models import SpawnRecord
from spawning.offers.machine_type import count_field, forget_node_capacities
from tests.hubapi import TOKEN, hub_client, identity, make_preset, offer_namespace, our_objects, prespawn_body
from tests.test_api_schema import _schema, assert_matches_schema

pytestmark = pytest.mark.django_db

VALUES = Path(__file__).parent / "fixtures" / "z2jh-gpu-values.yaml"
FIELD = "profile_option_gpu-t4__image"
UNLISTED = "profile_option_gpu-t4__image__unlisted"
PYTORCH = "quay.io/jupyter/pytorch-notebook:cuda12-2024-05-27"
TENSORFLOW = "quay.io/jupyter/tensorflow-notebook:cuda-2024-05-27"
GPU = "nvidia.com/gpu"


@pytest.fixture(autouse=True)
def hub_token(settings: Any) -> None:
    settings.OPTIONS_PORTAL_HUB_TOKEN = TOKEN


def run_import() -> str:
    out = StringIO()
    call_command("import_config", "--helm-values", str(VALUES), stdout=out)
    return out.getvalue()


@pytest.fixture
def imported() -> str:
    output = run_import()
    make_preset("small", default=True)
    # A T4 node as the sync stores it (labels, taints, allocatable in milli-units), so the
    # imported GPU machine type has somewhere to run.
    ClusterNode.objects.create(
        name="gke-t4-1",
        labels={"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"},
        taints=[{"key": GPU, "value": "present", "effect": "NoSchedule"}],
        allocatable={"cpu": 8000, "memory": 32 * 2**30 * 1000, "pods": 110_000, GPU: 1000},
        ready=True,
    )
    forget_node_capacities()
    return output


def gpu_body(namespace: str, **options: str) -> dict[str, Any]:
    """A /prespawn of the GPU profile on its machine type with one GPU, reply version 2."""
    body = prespawn_body(
        profile="gpu-t4", namespace=namespace, machine_type="gpu-t4", **{count_field(GPU): "1"}, **options
    )
    body["reply_version"] = 2
    return body


def test_the_import_makes_machine_types_and_profile_options(imported: str) -> None:
    cpu, gpu = Profile.objects.get(slug="small-cpu"), Profile.objects.get(slug="gpu-t4")
    # singleuser.image is the image of a profile that names none.
    assert cpu.image == "quay.io/jupyter/minimal-notebook:2024-05-27"
    assert (gpu.display_name, gpu.image) == ("GPU <T4>", PYTORCH)
    # What is not compute stays an extra override.
    assert cpu.kubespawner_override == {}
    assert gpu.kubespawner_override == {"default_url": "/lab", "extra_labels": {"gpu": "true"}}

    small = MachineType.objects.get(slug="small-cpu")
    assert list(cpu.machine_types.all()) == [small]
    assert (small.max_cpu, small.max_mem, small.guarantee_policy) == (Decimal("2"), 4096, GuaranteePolicy.EXPLICIT)
    assert (small.cpu_guarantee, small.mem_guarantee) == (Decimal("0.5"), 2048)
    gpu_type = MachineType.objects.get(slug="gpu-t4")
    assert list(gpu.machine_types.all()) == [gpu_type]
    assert gpu_type.extended_resources == {"nvidia.com/gpu": [1]}
    assert gpu_type.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}
    assert gpu_type.tolerations == [
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}
    ]
    assert (gpu_type.max_cpu, gpu_type.max_mem, gpu_type.guarantee_policy) == (
        Decimal("4"),
        16384,
        GuaranteePolicy.EQUAL,
    )

    option = ProfileOption.objects.get(profile=gpu)
    assert (option.slug, option.display_name) == ("image", "Image")
    assert [c["key"] for c in option.choices] == ["pytorch", "tensorflow"]
    assert option.default_choice() == option.choices[0]
    assert option.unlisted_enabled
    assert option.unlisted_validation_regex == r"^quay\.io/jupyter/.+:.+$"
    assert option.unlisted_kubespawner_override == {"image": "{value}", "extra_labels": {"custom-image": "yes"}}

    # What did not map is reported by name, in the report's style.
    assert (
        "z2jh-gpu-values.yaml (singleuser.profileList), entry 2 (gpu-t4), profile_options.image.unlisted_choice: "
        "not mapped, ignored: display_name_in_choices" in imported
    )
    assert "cpu_limit, mem_limit, node_selector, tolerations, extra_resource_limits became the machine type" in imported
    # Running it again changes nothing.
    assert "Total: 0 created, 0 updated" in run_import()


def test_the_form_offers_the_chosen_profiles_options_escaped(imported: str) -> None:
    hub = hub_client()
    offer_namespace("user-alice")
    response = hub.post("/options", identity(default_namespace="user-alice"), format="json")
    assert response.status_code == 200, response.content
    assert_matches_schema(_schema(), "/options", response)
    data = response.json()
    assert [p["slug"] for p in data["profiles"]] == ["small-cpu", "gpu-t4"]
    assert data["profile_options"] == [
        {
            "profile": "gpu-t4",
            "slug": "image",
            "field": FIELD,
            "display_name": "Image",
            "choices": [
                {"key": "pytorch", "display_name": "PyTorch", "default": True},
                {"key": "tensorflow", "display_name": "TensorFlow", "default": False},
            ],
            "default": "pytorch",
            "unlisted": {
                "field": UNLISTED,
                "display_name": "Custom image",
                "validation_message": "Must be an image matching ^quay.io/jupyter/<name>:<tag>$",
            },
        }
    ]
    assert data["selected"][FIELD] == "pytorch"
    assert data["selected"][UNLISTED] == ""
    # The profile's compute traits became its machine type, offered with what is free now.
    (machine_type,) = [t for t in data["machine_types"] if t["id"] == "gpu-t4"]
    assert machine_type["profiles"] == ["gpu-t4"]
    assert machine_type["free_summary"].startswith("1 of 1 GPU free")

    html = data["html"]
    assert "GPU &lt;T4&gt;" in html and "GPU <T4>" not in html
    assert "One NVIDIA T4 &amp; a choice of image" in html
    # The GPU profile's options are drawn hidden (and disabled) while the default CPU profile is chosen.
    assert '<fieldset class="op-group" data-op-profile="gpu-t4" hidden disabled>' in html
    assert f'<select class="form-select op-control" id="op-{FIELD}" name="{FIELD}">' in html
    assert '<option value="pytorch" selected>PyTorch</option>' in html
    assert '<option value="tensorflow">TensorFlow</option>' in html
    assert f'name="{UNLISTED}" value=""' in html
    assert "Must be an image matching ^quay.io/jupyter/&lt;name&gt;:&lt;tag&gt;$" in html


@pytest.mark.parametrize(
    ("options", "field", "reason"),
    [
        ({FIELD: "jax"}, FIELD, "There is no choice 'jax' for 'Image'."),
        ({UNLISTED: "docker.io/evil/miner:1"}, UNLISTED, "Must be an image matching"),
        ({UNLISTED: "<script>:1"}, UNLISTED, "'<script>:1' is not accepted for 'Image'"),
    ],
)
def test_a_refused_option_is_a_400_naming_the_field(
    imported: str, options: dict[str, str], field: str, reason: str
) -> None:
    offer_namespace("user-alice")
    response = hub_client().post("/prespawn", gpu_body("user-alice", **options), format="json")
    assert response.status_code == 400, response.content
    assert_matches_schema(_schema(), "/prespawn", response)
    fields = response.json()["fields"]
    assert list(fields) == [field]
    assert any(reason in text for text in fields[field])
    assert not SpawnRecord.objects.filter(result="created").exists()


def test_an_option_without_choices_or_unlisted_value_is_refused_by_the_model() -> None:
    profile = Profile.objects.create(slug="p", display_name="P", image="example.org/p:1")
    with pytest.raises(ValidationError) as refused:
        ProfileOption(profile=profile, slug="image", display_name="Image").full_clean()
    assert "choices" in refused.value.message_dict
    with pytest.raises(ValidationError) as refused:
        ProfileOption(
            profile=profile,
            slug="bad__slug",
            display_name="Image",
            unlisted_enabled=True,
            unlisted_validation_regex="(",
            unlisted_kubespawner_override={"image": "fixed"},
        ).full_clean()
    assert set(refused.value.message_dict) == {"slug", "unlisted_validation_regex", "unlisted_kubespawner_override"}


@pytest.mark.kube
@pytest.mark.parametrize(
    ("options", "image", "labels"),
    [
        ({}, PYTORCH, {"gpu": "true"}),
        ({FIELD: "tensorflow"}, TENSORFLOW, {"gpu": "true", "framework": "tensorflow"}),
        (
            {FIELD: "tensorflow", UNLISTED: "quay.io/jupyter/scipy-notebook:2024-05-27"},
            "quay.io/jupyter/scipy-notebook:2024-05-27",
            {"gpu": "true", "custom-image": "yes"},
        ),
    ],
)
def test_the_prespawn_reply_carries_the_chosen_options_overrides(
    kube: Any, core_v1: Any, namespace: str, imported: str, options: dict[str, str], image: str, labels: dict[str, str]
) -> None:
    offer_namespace(namespace)
    body = gpu_body(namespace, **options)
    response = hub_client().post("/prespawn", body, format="json")
    assert response.status_code == 200, response.content
    assert_matches_schema(_schema(), "/prespawn", response)
    reply = response.json()
    assert reply["image"] == image
    override = reply["kubespawner_override"]
    assert {key: override[key] for key in ("default_url", "extra_labels")} == {
        "default_url": "/lab",
        "extra_labels": labels,
    }
    # Placement and the GPU from the machine type the profile's compute traits became.
    assert override["node_selector"] == {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}
    assert override["tolerations"] == [{"key": GPU, "operator": "Equal", "value": "present", "effect": "NoSchedule"}]
    assert override["extra_resource_limits"] == override["extra_resource_guarantees"] == {GPU: "1"}
    assert reply["namespace"] == namespace
    # Remembered for the next form of this server, and the objects of the spawn are in the cluster.
    record = SpawnRecord.objects.latest("id")
    assert record.choices[FIELD] == options.get(FIELD, "pytorch")
    if UNLISTED in options:
        assert record.choices[UNLISTED] == options[UNLISTED]
    again = hub_client().post("/options", identity(default_namespace=namespace), format="json").json()
    assert again["selected"].get(UNLISTED, "") == options.get(UNLISTED, "")
    assert our_objects(core_v1, namespace) == []

    # Version 1 keeps the original contract's keys only.
    body["reply_version"] = 1
    original = hub_client().post("/prespawn", body, format="json").json()
    assert "image" not in original and "kubespawner_override" not in original


def test_overrides_merge_as_kubespawner_applies_them() -> None:
    from spawning.offers.profile_option import merge_overrides, substitute

    profile = {"extra_labels": {"gpu": "true", "team": "a"}, "default_url": "/lab", "cmd": ["a"]}
    choice = {"extra_labels": {"team": None, "framework": "tf"}, "cmd": ["b"], "start_timeout": None}
    assert merge_overrides(profile, choice) == {
        "extra_labels": {"gpu": "true", "framework": "tf"},
        "default_url": "/lab",
        "cmd": ["b"],
        "start_timeout": None,
    }
    # The profile's own overrides are not changed by merging a choice over them.
    assert profile["extra_labels"] == {"gpu": "true", "team": "a"}
    # {value} is replaced in every text at any depth; other braces stay as written.
    assert substitute({"image": "{value}", "env": {"TAG": "${HOME}/{value}"}, "n": 1}, "x:1") == {
        "image": "x:1",
        "env": {"TAG": "${HOME}/x:1"},
        "n": 1,
    }
