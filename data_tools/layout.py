"""Folder-layout templates: where the domain, split, polarization and label sit in a path.

A template is a relative path with fields in braces, e.g. ``{domain}/{pol}/{label}/{name}``
(the published dataset) or ``{label}Data/{pol}/{name}`` (a tree with no domain level).
Fields: ``domain``, ``split``, ``pol``, ``label`` and ``name`` (the file name, required, last).
Any other text is literal and must match exactly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from data_tools.names import canonical_polarization, canonical_split

FIELDS: tuple[str, ...] = ("domain", "split", "pol", "label", "name")

DEFAULT_TEMPLATES: tuple[str, ...] = (
    "{domain}/{pol}/{label}/{name}",
    "{domain}/{split}/{pol}/{label}/{name}",
)
NO_DOMAIN_TEMPLATES: tuple[str, ...] = (
    "{pol}/{label}/{name}",
    "{split}/{pol}/{label}/{name}",
)

_FIELD = re.compile(r"\{([^{}]*)\}")


class LayoutError(ValueError):
    """A template is malformed or no template fits a tree."""


@dataclass(frozen=True)
class Layout:
    """A compiled layout template."""

    template: str
    pattern: re.Pattern[str]
    fields: frozenset[str]

    def match(self, relative_path: str) -> dict[str, str] | None:
        """Field values of a POSIX relative path, or None if the path does not fit."""
        found = self.pattern.fullmatch(relative_path)
        return found.groupdict() if found else None


def compile_layout(template: str) -> Layout:
    """Compile a template; raises LayoutError naming the problem (unknown or repeated field, no {name})."""
    template = template.strip().strip("/")
    pieces: list[str] = []
    seen: list[str] = []
    position = 0
    for found in _FIELD.finditer(template):
        field = found.group(1)
        if field not in FIELDS:
            raise LayoutError(
                f"layout {template!r}: unknown field {{{field}}}; expected some of "
                + ", ".join(f"{{{f}}}" for f in FIELDS)
            )
        if field in seen:
            raise LayoutError(f"layout {template!r}: field {{{field}}} appears twice")
        seen.append(field)
        pieces.append(re.escape(template[position : found.start()]))
        pieces.append(f"(?P<{field}>[^/]+?)" if field != "name" else "(?P<name>[^/]+)")
        position = found.end()
    pieces.append(re.escape(template[position:]))
    if "name" not in seen:
        raise LayoutError(f"layout {template!r}: the file name field {{name}} is required")
    if not template.endswith("{name}"):
        raise LayoutError(f"layout {template!r}: {{name}} must be the last component")
    if "pol" not in seen:
        raise LayoutError(f"layout {template!r}: a {{pol}} field is required to pair PPL and XPL images")
    return Layout(template, re.compile("".join(pieces)), frozenset(seen))


def _fit_score(layout: Layout, paths: Sequence[str]) -> int:
    """How many paths fit the layout with a known polarization (and a known split, if any)."""
    score = 0
    for path in paths:
        fields = layout.match(path)
        if fields is None or canonical_polarization(fields["pol"]) is None:
            continue
        if "split" in fields and canonical_split(fields["split"]) is None:
            continue
        score += 1
    return score


def detect_layout(
    paths: Sequence[str], *, has_domain_level: bool = True, candidates: Sequence[str] | None = None
) -> Layout:
    """Pick the default template that explains the most image paths.

    Args:
        paths: image paths relative to the root, POSIX separators.
        has_domain_level: False when the tree has no domain folder (``--domain`` given).
        candidates: templates to choose from instead of the default ones (the first wins a tie).

    Raises:
        LayoutError: no default template fits any path; the message lists what was tried.
    """
    if candidates is None:
        candidates = DEFAULT_TEMPLATES if has_domain_level else NO_DOMAIN_TEMPLATES
    layouts = [compile_layout(t) for t in candidates]
    scores = [_fit_score(layout, paths) for layout in layouts]
    best = max(range(len(layouts)), key=lambda i: scores[i])
    if scores[best] == 0:
        examples = ", ".join(repr(p) for p in list(paths)[:3]) or "no image files"
        raise LayoutError(
            "no layout fits this tree (tried "
            + ", ".join(repr(t) for t in candidates)
            + f"; example paths: {examples}). Pass --layout with a template, "
            "e.g. '{label}Data/{pol}/{name}', and --domain NAME if there is no domain level."
        )
    return layouts[best]
