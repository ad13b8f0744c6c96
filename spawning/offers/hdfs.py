"""HDFS: a discovered namenode the notebook's Hadoop client is configured for."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import Any

from django.template.loader import render_to_string

from inventory.models import HdfsInstance
from kube.provision import CONFIG_MAP
from spawning.access import may_use_hdfs
from spawning.labels import object_name
from spawning.offers.base import ManifestContext, OfferContext, OfferedKind, Out, Validation, ids
from spawning.offers.instances import InstanceOut, Instances
from spawning.offers.items import options_html, pick_item
from spawning.offers.placed import lean
from spawning.plan import HdfsChoice, SpawnPlan
from spawning.replies import ReplyBuilder

HADOOP_CONF_DIR = "/etc/hadoop/conf"
# XML 1.0 cannot hold most control characters, even escaped.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def hadoop_config_name(plan: SpawnPlan) -> str:
    return object_name(plan, "jhub-hadoop-config")


class HdfsKind(OfferedKind):
    name = "hdfs"
    template = "spawning/offers/hdfs.html"
    choice_fields = ("hdfs",)

    def load(self) -> Instances:
        return Instances.of(list(lean(HdfsInstance.objects.offerable())), description="description")

    def output_fields(self) -> dict[str, Out]:
        return {"hdfs": Out(InstanceOut)}

    def offer(self, ctx: OfferContext) -> None:
        loaded: Instances = ctx.snapshot.kinds[self.name]
        ctx.offered["hdfs"] = [item for row, item in loaded.offers if may_use_hdfs(ctx.access, row)]

    def offered_values(self, ctx: OfferContext, selected: Mapping[str, str]) -> dict[str, set[str]]:
        return {"hdfs": ids(ctx.offered["hdfs"])}

    def form(self, data: Mapping[str, Any], selected: Mapping[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        items = data.get("hdfs") or []
        chosen = pick_item(items, "id", selected.get("hdfs"), fallback_to_first=False)
        profile = state.get("chosen_profile")
        return {
            "hdfs": chosen,
            "hdfs_options": options_html(items, chosen),
            "show_hdfs": bool(profile and profile.get("enable_hdfs")),
        }

    def validate(self, v: Validation) -> None:
        hdfs_id = v.option("hdfs")
        v.choices["hdfs"] = hdfs_id
        if not hdfs_id or v.profile is None:
            return
        if not v.profile.enable_hdfs:
            v.refuse("hdfs", f"The profile '{v.profile.slug}' does not enable HDFS.")
            return
        loaded: Instances = v.snapshot.kinds[self.name]
        instance = v.pick("hdfs", "HDFS instance", hdfs_id, loaded.by_key, lambda i: may_use_hdfs(v.access, i))
        if instance is not None:
            v.plan["hdfs"] = HdfsChoice(id=instance.key, url=instance.url)

    def manifests(self, plan: SpawnPlan, ctx: ManifestContext) -> list[dict[str, Any]]:
        if plan.hdfs is None:
            return []
        context = {
            "hdfs_url": _XML_INVALID.sub("", plan.hdfs.url),
            "hadoop_conf_dir": shlex.quote(HADOOP_CONF_DIR),
            "hadoop_user_name": shlex.quote(plan.username),
        }
        return [
            {
                "apiVersion": "v1",
                "kind": CONFIG_MAP,
                "metadata": ctx.metadata(hadoop_config_name(plan), "hadoop-config"),
                "data": {
                    "core-site.xml": render_to_string("hadoop/core-site.xml", context),
                    "hadoop-env.sh": render_to_string("hadoop/hadoop-env.sh", context),
                    "log4j.properties": render_to_string("hadoop/log4j.properties", context),
                },
            }
        ]

    def reply(self, plan: SpawnPlan, reply: ReplyBuilder) -> None:
        if plan.hdfs is None:
            return
        reply.env["HADOOP_CONF_DIR"] = HADOOP_CONF_DIR
        reply.env["HADOOP_USER_NAME"] = plan.username
        reply.mount({"name": "jhub-hadoop-config", "configMap": {"name": hadoop_config_name(plan)}}, HADOOP_CONF_DIR)


KIND = HdfsKind()
