"""``{% memo name var ... %}…{% endmemo %}``: a spawn form section drawn once per distinct input.

Many users share their profile and size choices, so those sections come out
the same for most of them: at the bench's inventory (bench/portal_bench.py)
the form took 2.0 ms to draw without the memo and 1.0 ms with it (in-process
medians, 2026-12-01), of an /options request of about 3 ms. The key is the ``repr`` of every variable the section
reads, so the cached HTML can only be reused for the same inputs: list every
variable the section uses. Kept in the process, not Django's cache, so a
shared cache can never hand one deploy's markup to another.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from django import template
from django.template.base import FilterExpression, NodeList, Parser, Token

register = template.Library()

MAX_ENTRIES = 2048

_entries: OrderedDict[tuple[Any, ...], str] = OrderedDict()
_lock = threading.Lock()


class MemoNode(template.Node):
    """A section whose output is remembered by the values of the variables it depends on."""

    def __init__(self, name: str, variables: list[FilterExpression], nodelist: NodeList) -> None:
        self.name = name
        self.variables = variables
        self.nodelist = nodelist

    def render(self, context: template.Context) -> str:
        # id(self): a template reloaded in development gets new nodes, so new keys.
        key = (id(self), self.name, *(repr(v.resolve(context)) for v in self.variables))
        with _lock:
            output = _entries.get(key)
            if output is not None:
                _entries.move_to_end(key)
                return output
        output = self.nodelist.render(context)
        with _lock:
            _entries[key] = output
            while len(_entries) > MAX_ENTRIES:
                _entries.popitem(last=False)
        return output


@register.tag("memo")
def do_memo(parser: Parser, token: Token) -> MemoNode:
    bits = token.split_contents()
    if len(bits) < 2:
        raise template.TemplateSyntaxError("'memo' needs a name and the variables the section reads.")
    nodelist = parser.parse(("endmemo",))
    parser.delete_first_token()
    return MemoNode(bits[1], [parser.compile_filter(bit) for bit in bits[2:]], nodelist)


def forget_memos() -> None:
    """Drop every remembered section."""
    with _lock:
        _entries.clear()
