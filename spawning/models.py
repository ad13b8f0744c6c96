"""What the portal records about spawns."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class SpawnRecord(models.Model):
    """One call to /prespawn: who asked for what, what was made, and how it ended."""

    class Result(models.TextChoices):
        PROVISIONED = "provisioned", "Provisioned"
        REFUSED = "refused", "Refused (bad choice)"
        FAILED = "failed", "Failed (cluster error)"
        STOPPED = "stopped", "Stopped (cleaned up)"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    username = models.CharField(max_length=255, db_index=True)
    server_name = models.CharField(max_length=255, blank=True)
    pod_name = models.CharField(max_length=253, blank=True)
    groups = models.JSONField(default=list, blank=True)
    profile = models.CharField(max_length=63, blank=True)
    choices = models.JSONField(default=dict, blank=True)
    namespace = models.CharField(max_length=63, blank=True)
    service_account = models.CharField(max_length=253, blank=True)
    iam_role_arn = models.CharField(max_length=2048, blank=True)
    cluster_objects = models.JSONField(default=list, blank=True, help_text="kind/namespace/name of each object made")
    reply = models.JSONField(default=dict, blank=True)
    result = models.CharField(max_length=16, choices=Result.choices, db_index=True)
    message = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ("-created_at",)

    def __str__(self) -> str:
        server = f"/{self.server_name}" if self.server_name else ""
        return f"{self.username}{server} {self.result} {self.created_at:%Y-%m-%d %H:%M}"


class RememberedChoices(models.Model):
    """A user's last choices for a server, preselected next time."""

    username = models.CharField(max_length=255)
    server_name = models.CharField(max_length=255, blank=True)
    choices = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["username", "server_name"], name="one_memory_per_server"),
        ]
        verbose_name_plural = "remembered choices"

    def __str__(self) -> str:
        return f"{self.username}/{self.server_name}"
