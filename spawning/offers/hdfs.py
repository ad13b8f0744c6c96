"""HDFS: a discovered namenode the notebook's Hadoop client is configured for."""

from __future__ import annotations

import re
import shlex
from typing import Any

from django.template.loader import render_to_string

from inventory.models import HdfsInstance
from kube.provision import CONFIG_MAP
from spawning.access import UserAccess, may_use_hdfs
from spawning.labels import object_name
from spawning.offers.base import ManifestContext, Validation
from spawning.offers.instances import InstanceKind, Instances
from spawning.offers.items import lean
from spawning.plan import HdfsChoice, SpawnPlan
from spawning.replies import ReplyBuilder

HADOOP_CONF_DIR = "/etc/hadoop/conf"
# XML 1.0 cannot hold most control characters, even escaped.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def hadoop_config_name(plan: SpawnPlan) -> str:
    return object_name(plan, "jhub-hadoop-config")


class HdfsKind(InstanceKind):
    name = "hdfs"
    template = "spawning/offers/hdfs.html"
    choice_fields = ("hdfs",)
    reply_key = "hdfs"
    form_name = "hdfs"
    feature = "hdfs"
    feature_title = "HDFS"
    what = "HDFS instance"

    def load(self) -> Instances:
        return Instances.of(list(lean(HdfsInstance.objects.offerable())), description="description")

    def may_use(self, access: UserAccess, row: Any) -> bool:
        return may_use_hdfs(access, row)

    def validate(self, v: Validation) -> None:
        instance = self.chosen(v)
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
