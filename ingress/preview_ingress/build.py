"""Which form of the ingress runs: compiled by mypyc (its wheel, built with a C compiler) or pure Python."""

from __future__ import annotations

from importlib.machinery import ExtensionFileLoader


def compiled() -> bool:
    """Whether the per-request modules run compiled by mypyc (``ingress/setup.py``)."""
    from preview_ingress import proxy  # at call time: proxy imports what imports this module

    return isinstance(proxy.__loader__, ExtensionFileLoader)
