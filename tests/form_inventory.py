"""A small, realistic inventory for the spawn-form tests, with hostile text in the places users can't control."""

from __future__ import annotations

from decimal import Decimal

from django.utils import timezone

from inventory.models import (
    GafferGraph,
    HdfsInstance,
    Namespace,
    NamespaceOption,
    NotebookVolume,
    Profile,
    ResourcePreset,
    ServiceAccount,
    Source,
    SyncRound,
)

# Quotes, a script end tag and an event handler: what broke the original form.
EVIL = 'it\'s "quoted" </script><script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
EVIL_ARN = f"arn:aws:iam::123456789012:role/{EVIL}"
READER_ARN = "arn:aws:iam::123456789012:role/team-a-reader"


def build_inventory() -> None:
    """Two namespaces with their own accounts and volumes, four profiles, three presets, HDFS and graphs."""
    now = timezone.now()
    for name in ("team-a", "team-b"):
        Namespace.objects.create(name=name, last_seen=now)
    NamespaceOption.objects.create(pattern="team-a", description="Team A's projects", order=1)
    NamespaceOption.objects.create(pattern="team-b", description="Team B's projects", order=2)

    Profile.objects.create(
        slug="python",
        display_name="Python",
        description=f"Plain notebooks. {EVIL}",
        image="py:1",
        default=True,
        order=1,
    )
    Profile.objects.create(slug="hdfs-only", display_name="HDFS tools", image="hdfs:1", enable_hdfs=True, order=2)
    Profile.objects.create(
        slug="gaffer", display_name="Gaffer", image="gaffer:1", enable_hdfs=True, enable_gaffer=True, order=3
    )
    Profile.objects.create(
        slug="spark", display_name="PySpark", image="spark:1", enable_spark=True, spark_image="spark-py:3", order=4
    )

    ResourcePreset.objects.create(slug="small", display_name="Small", default=True, order=1)
    ResourcePreset.objects.create(
        slug="medium",
        display_name="Medium",
        order=2,
        cpu=Decimal("1"),
        mem=2048,
        spark_cpu=Decimal("2"),
        spark_mem=1024,
        disk=20,
    )
    ResourcePreset.objects.create(slug="large", display_name="Large", order=3, cpu=Decimal("2"), mem=8192, disk=50)

    ServiceAccount.objects.create(
        key="team-a:reader", namespace="team-a", name="reader", display_name="Reader", observed_role_arn=READER_ARN
    )
    ServiceAccount.objects.create(
        key="team-a:writer",
        namespace="team-a",
        name="writer",
        display_name="Writer",
        description="Writes to the lake",
        role_arn_override=EVIL_ARN,
    )
    ServiceAccount.objects.create(key="team-b:analyst", namespace="team-b", name="analyst", display_name="Analyst")

    NotebookVolume.objects.create(
        key="team-a:claim-alice-home",
        namespace="team-a",
        name="claim-alice-home",
        owner_username="alice",
        volume_name="home",
        capacity="10Gi",
    )
    NotebookVolume.objects.create(
        key="team-b:claim-alice-data",
        namespace="team-b",
        name="claim-alice-data",
        owner_username="alice",
        owner_servername="lab",
        volume_name="data",
        capacity="20Gi",
    )
    NotebookVolume.objects.create(
        key="team-a:claim-bob-home", namespace="team-a", name="claim-bob-home", owner_username="bob", volume_name="bob"
    )

    HdfsInstance.objects.create(
        key="team-a:hdfs-main",
        source=Source.MANUAL,
        namespace="team-a",
        name="hdfs-main",
        display_name=EVIL,
        description="The main HDFS",
        url_override="hdfs://hdfs-main-namenodes.team-a.svc:9820",
    )
    GafferGraph.objects.create(
        key="team-a:roads",
        namespace="team-a",
        name="roads",
        display_name="Road traffic",
        description=EVIL,
        observed_url="http://roads-api.team-a.svc:80/rest",
        store_secret="roads-store",
    )
    GafferGraph.objects.create(
        key="team-b:ships",
        namespace="team-b",
        name="ships",
        display_name="Shipping",
        description="Where the ships are",
        observed_url="http://ships-api.team-b.svc:80/rest",
        store_secret="ships-store",
    )
    SyncRound.objects.create(status=SyncRound.Status.COMPLETED, started_at=now, finished_at=now)
