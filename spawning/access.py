"""Who may use what: the access rules applied to one user and their JupyterHub groups.

The rules, shared by the spawn form (what is offered) and /prespawn (what is
accepted), so that the two can never disagree:

- An item that no AccessRule names is open to everyone, as in the original.
  Once a rule names an item, only users matching a rule that names it may use it.
- A NamespaceOption's own ``users``/``groups`` lists (the original's per-user
  lists) grant it too: with neither those lists nor a rule naming it, it is
  open to everyone; otherwise the user must be in its lists or match a rule
  naming it. Only namespaces that exist in the inventory are offered (all of
  them while the inventory knows no namespace at all, as the original did).
- Service accounts also obey their ``hub.jupyter.org/users`` annotation
  (``observed_users``; empty means everyone) and must live in one of the user's
  namespaces. Volumes must be the user's own and in one of their namespaces.
- Hidden or missing items are never offered nor accepted; graphs only once
  available (their store Secret exists). An HDFS instance or graph listed in
  the original's static files is offered as that entry while the cluster does
  not show it (see inventory.models.StaticEntry).
- Resource ceilings: the most generous ceiling among the user's matching rules
  that set one; none set means the presets' bounds alone.

Every selector here runs a fixed number of queries, whatever the inventory size.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from inventory.models import (
    AccessRule,
    GafferGraph,
    HdfsInstance,
    NamespaceOption,
    NotebookVolume,
    Profile,
    ResourcePreset,
    ServiceAccount,
)
from kube.names import label_value, owner_label_value


def _rule_relations() -> dict[str, str]:
    """Every many-to-many of AccessRule (an offered kind's items), with the through-table column naming the item."""
    relations = {}
    for relation in AccessRule._meta.many_to_many:
        item_model = relation.related_model
        relations[relation.name] = f"{item_model._meta.model_name}_id"  # type: ignore[union-attr]
    return relations


def dns_safe_name(name: str) -> str:
    """A username as it appears in templated namespace names (``user-{username}``).

    The same injective mapping as object names and labels: a plain name stays as it
    is, anything else gets a hash suffix, so ``alice.smith`` and ``alice_smith``
    can never resolve to the same namespace.
    """
    return label_value(name)


def namespace_for_pattern(pattern: str, *, username: str) -> str:
    # str.replace, not str.format: a pattern with other braces must not raise.
    return pattern.replace("{username}", dns_safe_name(username))


@dataclass(frozen=True)
class AccessRules:
    """Every access rule, loaded once, with the items each one names."""

    rules: tuple[AccessRule, ...]
    # kind → item pk → ids of the rules naming it
    naming: Mapping[str, Mapping[int, frozenset[int]]]

    @classmethod
    def load(cls) -> AccessRules:
        """One query, and one per kind a rule can name, whatever the number of rules and items."""
        rules = tuple(AccessRule.objects.all())
        naming: dict[str, dict[int, frozenset[int]]] = {}
        for kind, column in _rule_relations().items():
            through = getattr(AccessRule, kind).through
            named: dict[int, set[int]] = defaultdict(set)
            for rule_id, item_id in through.objects.values_list("accessrule_id", column):
                named[item_id].add(rule_id)
            naming[kind] = {item_id: frozenset(rule_ids) for item_id, rule_ids in named.items()}
        return cls(rules=rules, naming=naming)

    def for_user(self, *, username: str, groups: Iterable[str]) -> UserAccess:
        group_set = frozenset(groups)
        matching = tuple(rule for rule in self.rules if rule.applies_to(username, tuple(group_set)))
        return UserAccess(
            username=username,
            groups=group_set,
            matching=matching,
            matching_ids=frozenset(rule.pk for rule in matching),
            naming=self.naming,
        )


@dataclass(frozen=True)
class UserAccess:
    """The rules as they apply to one user with their groups."""

    username: str
    groups: frozenset[str]
    matching: tuple[AccessRule, ...]
    matching_ids: frozenset[int]
    naming: Mapping[str, Mapping[int, frozenset[int]]] = field(repr=False)

    def named(self, kind: str, pk: int) -> bool:
        return bool(self.naming.get(kind, {}).get(pk))

    def granted_by_rule(self, kind: str, pk: int) -> bool:
        return bool(self.naming.get(kind, {}).get(pk, frozenset()) & self.matching_ids)

    def allows(self, kind: str, pk: int) -> bool:
        """Open when no rule names the item; else a rule naming it must match the user."""
        return not self.named(kind, pk) or self.granted_by_rule(kind, pk)

    def ceiling(self, field_name: str) -> Decimal | None:
        """The most generous ``max_<field>`` among the matching rules that set one."""
        values = [Decimal(value) for rule in self.matching if (value := getattr(rule, f"max_{field_name}")) is not None]
        return max(values) if values else None


def user_access(*, username: str, groups: Iterable[str]) -> UserAccess:
    return AccessRules.load().for_user(username=username, groups=groups)


# --- Predicates: the single place each rule is decided ---------------------


def may_use_profile(access: UserAccess, profile: Profile) -> bool:
    return profile.enabled and access.allows("profiles", profile.pk)


def may_use_namespace_option(access: UserAccess, option: NamespaceOption) -> bool:
    own_users, own_groups = option.users or [], option.groups or []
    restricted = bool(own_users or own_groups) or access.named("namespaces", option.pk)
    if not restricted:
        return True
    in_own_lists = access.username in own_users or bool(access.groups & set(own_groups))
    return in_own_lists or access.granted_by_rule("namespaces", option.pk)


def _offerable(item: HdfsInstance | GafferGraph | ServiceAccount | NotebookVolume) -> bool:
    return item.is_offered


def may_use_hdfs(access: UserAccess, instance: HdfsInstance) -> bool:
    return instance.is_offered and access.allows("hdfs_instances", instance.pk)


def may_use_graph(access: UserAccess, graph: GafferGraph) -> bool:
    return graph.is_offered and access.allows("gaffer_graphs", graph.pk)


def may_use_service_account(access: UserAccess, account: ServiceAccount, *, namespaces: Iterable[str]) -> bool:
    observed_users = account.observed_users or []
    return (
        _offerable(account)
        and account.namespace in set(namespaces)
        and (not observed_users or access.username in observed_users)
        and access.allows("service_accounts", account.pk)
    )


def may_use_volume(access: UserAccess, volume: NotebookVolume, *, namespaces: Iterable[str]) -> bool:
    return _offerable(volume) and owns_volume(access.username, volume) and volume.namespace in set(namespaces)


def owns_volume(username: str, volume: NotebookVolume) -> bool:
    """The owner annotation holds the raw name; a claim with only the label holds its DNS-safe form."""
    if volume.owner_username:
        return volume.owner_username == username
    return bool(volume.owner_label) and volume.owner_label == owner_label_value(username)


# --- Selectors --------------------------------------------------------------


@dataclass(frozen=True)
class NamespaceChoice:
    """A namespace this user may pick, resolved from a NamespaceOption."""

    name: str
    description: str


def namespace_choices(
    *, access: UserAccess, options: Iterable[NamespaceOption], present: Collection[str]
) -> list[NamespaceChoice]:
    """Namespaces the user may use, in the operators' order, only those that exist (are in ``present``).

    As in the original, an empty ``present`` (the namespace list never read) drops none.
    """
    resolved: dict[str, str] = {}
    for option in options:
        if not may_use_namespace_option(access, option):
            continue
        name = namespace_for_pattern(option.pattern, username=access.username)
        resolved.setdefault(name, option.description)
    return [
        NamespaceChoice(name=name, description=desc)
        for name, desc in resolved.items()
        if not present or name in present
    ]


@dataclass(frozen=True)
class Bound:
    """The range a custom value must lie in, and the value to start from."""

    min: Decimal
    max: Decimal
    default: Decimal

    def contains(self, value: Decimal) -> bool:
        return self.min <= value <= self.max


def builtin_bound(name: str) -> tuple[Decimal, Decimal, Decimal]:
    """(min, max, default) when no preset exists at all: the preset columns' own defaults."""
    field = ResourcePreset._meta.get_field
    return tuple(Decimal(str(field(column).default)) for column in (f"{name}_min", f"{name}_max", name))  # type: ignore[return-value,union-attr]


def preset_list() -> list[ResourcePreset]:
    return list(ResourcePreset.objects.all())


def effective_bounds(*, access: UserAccess, presets: list[ResourcePreset]) -> dict[str, Bound]:
    """[lowest preset minimum, highest preset maximum], each maximum capped by the user's ceiling."""
    default_preset = next((p for p in presets if p.default), presets[0] if presets else None)
    bounds: dict[str, Bound] = {}
    for name in ResourcePreset.BOUNDED:
        if presets:
            low = min(Decimal(getattr(p, f"{name}_min")) for p in presets)
            high = max(Decimal(getattr(p, f"{name}_max")) for p in presets)
            default = Decimal(getattr(default_preset, name))
        else:
            low, high, default = builtin_bound(name)
        ceiling = access.ceiling(name)
        if ceiling is not None:
            high = min(high, ceiling)
        # A ceiling below every preset's minimum leaves exactly the ceiling.
        low = min(low, high)
        bounds[name] = Bound(min=low, max=high, default=min(max(default, low), high))
    return bounds


def preset_fits(preset: ResourcePreset, bounds: Mapping[str, Bound]) -> bool:
    """Whether every value of the preset is one this user may ask for."""
    return all(bounds[name].contains(Decimal(getattr(preset, name))) for name in ResourcePreset.BOUNDED)
