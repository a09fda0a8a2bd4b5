"""Write edge/preview_edge.js into template.yaml as the ``PreviewEdge`` function's code (``make edge``).

The JavaScript lives in its own file (linted by eye, run by node in the tests); the template
carries it as the ``FunctionCode: !Sub |`` block of ``PreviewEdge``, where CloudFormation fills
``${InputPathPrefix}``: verbatim but for its whole-line ``//`` comments and each line's indentation
(:func:`deployed`), since CloudFront's 10 KB limit on a function counts them. ``--check`` exits 1
when the template's copy differs (the test ``tests/integration/test_edge_template.py`` fails then too).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "edge" / "preview_edge.js"
TEMPLATE = ROOT / "template.yaml"
RESOURCE = "  PreviewEdge:\n"
CODE_KEY = "      FunctionCode: !Sub |\n"
INDENT = " " * 8


def deployed(source: str) -> str:
    """``source`` as the function deploys: without the lines that are only a ``//`` comment, and
    each line without its indentation (no string or regular expression of it spans lines)."""
    lines = (line.lstrip(" ") for line in source.splitlines(keepends=True))
    return "".join(line for line in lines if not line.startswith("//"))


def with_source(template: str, source: str) -> str:
    """``template`` with the code block of ``PreviewEdge`` replaced by ``source`` as deployed."""
    source = deployed(source)
    start = template.index(RESOURCE)
    code = template.index(CODE_KEY, start) + len(CODE_KEY)
    lines = template[code:].splitlines(keepends=True)
    end = code
    for line in lines:
        if line.strip() and not line.startswith(INDENT):
            break
        end += len(line)
    block = "".join(INDENT + line if line.strip() else "\n" for line in source.splitlines(keepends=True))
    trailing = template[code:end][len(template[code:end].rstrip("\n")) :]
    return template[:code] + block.rstrip("\n") + "\n" + trailing[1:] + template[end:]


def main(argv: list[str]) -> int:
    template = TEMPLATE.read_text(encoding="utf-8")
    built = with_source(template, SOURCE.read_text(encoding="utf-8"))
    if "--check" in argv:
        if built != template:
            print("template.yaml's PreviewEdge code differs from edge/preview_edge.js: run `make edge`")
            return 1
        return 0
    if built != template:
        TEMPLATE.write_text(built, encoding="utf-8")
        print("wrote edge/preview_edge.js into template.yaml (PreviewEdge)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
