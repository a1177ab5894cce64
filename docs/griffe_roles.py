"""Griffe extension for the documentation build: Sphinx roles in docstrings become links.

The library's docstrings are Google style with reST roles (``:func:`carafe```,
``:class:`~resamplers.base.Guide```).  mkdocstrings renders Markdown, so each role is
rewritten into an optional autorefs cross-reference: a link where the target is rendered
somewhere on the site, plain code where it is not (a torch class, say), never a warning.
A relative name is resolved in the scope of the object the docstring belongs to.  A
paragraph ending in ``::`` (a reST literal block follows) ends in ``:`` instead, and an
``Example:`` section is read as Google style's ``Examples:`` (doctest blocks become code).
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:func|class|data|meth|attr|mod|obj|exc|const):`(~?)([^`<>]+?)`")
LITERAL_BLOCK = re.compile(r"(\S)::$", re.M)
EXAMPLE_SECTION = re.compile(r"^Example:$", re.M)


class SphinxRoles(griffe.Extension):
    """Rewrite reST roles (and ``::`` literal-block markers) in every docstring."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.is_alias or obj.docstring is None:
            return
        obj.docstring.value = rewrite(obj.docstring.value, obj)


def rewrite(text: str, scope: griffe.Object) -> str:
    def role(match: re.Match[str]) -> str:
        short, target = match.group(1), match.group(2).strip()
        identifier = _resolve(target, scope)
        title = target.rsplit(".", 1)[-1] if short else target
        return f'<autoref identifier="{html.escape(identifier)}" optional><code>{html.escape(title)}</code></autoref>'

    text = EXAMPLE_SECTION.sub("Examples:", text)
    return LITERAL_BLOCK.sub(r"\1:", ROLE.sub(role, text))


def _resolve(target: str, scope: griffe.Object) -> str:
    head, _, rest = target.partition(".")
    try:
        resolved = scope.resolve(head)
    except Exception:  # not a name in scope: an absolute path, or a name from elsewhere
        return target
    return f"{resolved}.{rest}" if rest else resolved
