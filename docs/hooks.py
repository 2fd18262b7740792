"""Build-time helpers of the documentation site (mkdocs.yml names this file twice).

* MkDocs hook (``hooks:``): in ``cli.md`` the marker ``<!-- dftad-cli-reference -->`` is replaced
  by every subcommand of the ``dftad`` command with its usage and a table of its arguments, read
  from the argparse parser itself (``dftad.cli._parser``), so the page cannot fall behind the code.
* MkDocs hook, tutorial pictures: an image link to ``images/tutorials/*.png`` whose file is not
  in the site (the pictures are drawn by ``scripts/tutorial_*.py`` and not kept in git) becomes a
  note naming the file, so that ``mkdocs build --strict`` passes before the tutorials have run and
  embeds the pictures once they have.
* Griffe extension (mkdocstrings' ``extensions:``, :class:`RstDocstrings`): dftad's docstrings are
  written in reStructuredText habits, which mkdocstrings would render as Markdown verbatim. Before
  rendering, each docstring's cross-reference roles (``:func:`name```) become links where the
  target is documented on the site and code otherwise, the ``::`` that introduces a literal block
  becomes ``:``, and the continuation lines of bulleted items are indented the 4 columns
  Markdown wants (RST aligns them with the item's text), so formulas inside items stay code
  blocks. The source files are not touched.
"""

from __future__ import annotations

import argparse
import html
import os
import posixpath
import re

import griffe

# ------------------------------------------------------------------------------ CLI reference
MARKER = "<!-- dftad-cli-reference -->"
WIDTH = 100  # columns of the usage lines


def _cell(text: str) -> str:
    """Text for a Markdown table cell: HTML-escaped, pipes and newlines neutralised."""
    return html.escape(" ".join(str(text).split()), quote=False).replace("|", "\\|")


def _argument(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    names = ", ".join(f"`{s}`" for s in action.option_strings)
    if action.nargs == 0:
        return names
    metavar = action.metavar or (None if action.choices else action.dest.upper())
    return f"{names} `{metavar}`" if metavar else names


def _default(action: argparse.Action) -> str:
    if (action.nargs == 0 or not action.option_strings
            or action.default in (None, argparse.SUPPRESS)):
        return ""
    return f"`{action.default}`"


def _description(action: argparse.Action) -> str:
    text = _cell(action.help or "")
    if action.choices:
        choices = ", ".join(f"`{c}`" for c in action.choices)
        text = f"{text} (one of {choices})" if text else f"One of {choices}."
    return text


def _usage(parser: argparse.ArgumentParser) -> str:
    old = {k: os.environ.get(k) for k in ("COLUMNS", "NO_COLOR")}
    os.environ.update(COLUMNS=str(WIDTH), NO_COLOR="1")  # fixed width, no colour (Python 3.14)
    try:
        return parser.format_usage().strip()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def cli_reference() -> str:
    """Markdown for every subcommand of ``dftad``: usage, then its arguments as a table."""
    from dftad import cli

    parser = cli._parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help for a in sub._choices_actions}
    out = ["```text", _usage(parser), "```", "",
           "| command | what it does |", "|---|---|"]
    out += [f"| [`{name}`](#dftad-{name}) | {_cell(helps.get(name) or '')} |"
            for name in sub.choices]
    out.append("")
    for name, p in sub.choices.items():
        out += [f"## dftad {name}", "", _cell(helps.get(name) or ""), "",
                "```text", _usage(p), "```", "",
                "| argument | default | description |", "|---|---|---|"]
        for action in p._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            out.append(f"| {_argument(action)} | {_default(action)} | {_description(action)} |")
        out.append("")
    return "\n".join(out)


def on_page_markdown(markdown, page, config, files):
    markdown = undrawn_pictures(markdown, page.file.src_uri, files)
    if page.file.src_uri != "cli.md":
        return markdown
    if MARKER not in markdown:
        raise ValueError(f"docs/cli.md lost its marker {MARKER}")
    return markdown.replace(MARKER, cli_reference())


# ------------------------------------------------------------------------------ tutorial pictures
_PICTURE = re.compile(r"!\[[^\]]*\]\(([^)\s]*images/tutorials/[^)\s]+\.png)\)")


def undrawn_pictures(markdown: str, src_uri: str, files) -> str:
    """Each image link to a tutorial picture missing from the site's ``files`` replaced by a
    note (the picture's command stands above it on the page)."""

    def note(m: re.Match) -> str:
        path = posixpath.normpath(posixpath.join(posixpath.dirname(src_uri), m.group(1)))
        if files.get_file_from_path(path) is not None:
            return m.group(0)
        return (f"*Picture not drawn yet: the command above writes `docs/{path}` (PNG files "
                "are not kept in git).*")

    return _PICTURE.sub(note, markdown)


# ------------------------------------------------------------------------------ docstrings
_ROLE = re.compile(r":(?:py:)?(?:func|meth|class|mod|data|attr|obj|exc|const):`([^`]+)`")
_MARKER = re.compile(r"(?:[*+-]|\d+\.) (?=\S)")


def _lookup(root: griffe.Module, path: str) -> str | None:
    """The documented path of ``path`` (an alias followed to its target), None if unknown."""
    if path != root.path and not path.startswith(root.path + "."):
        return None
    try:
        obj = root[path[len(root.path) + 1:]] if path != root.path else root
        return obj.target_path if obj.is_alias else obj.path
    except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None


def _resolve(root: griffe.Module, obj: griffe.Object, name: str) -> str | None:
    module = obj if obj.is_module else obj.module
    if name.startswith("."):
        base = module if module.is_package else module.parent
        dots = len(name) - len(name.lstrip("."))
        for _ in range(dots - 1):
            base = base.parent if base is not None else None
        return None if base is None else _lookup(root, f"{base.path}.{name.lstrip('.')}")
    scopes = [o.path for o in (obj, obj.parent) if o is not None and o.is_class]
    scopes += [module.path, module.parent.path if module.parent else None]
    for scope in [*scopes, None]:
        path = _lookup(root, f"{scope}.{name}" if scope else name)
        if path:
            return path
    return None


def _roles(root: griffe.Module, obj: griffe.Object, text: str) -> str:
    def link(m: re.Match) -> str:
        name = "".join(m.group(1).split())  # a role may be broken across lines
        short = name.startswith("~")
        name = name.lstrip("~")
        title = name.rsplit(".", 1)[-1] if short else name.lstrip(".")
        path = _resolve(root, obj, name)
        if path is None:
            return f"`{title}`"
        return f'<autoref identifier="{path}" optional>`{title}`</autoref>'

    return _ROLE.sub(link, text)


def _markdown_blocks(text: str) -> str:
    """RST literal-block ``::`` to ``:``; list-item continuation lines indented for Markdown."""
    out = []
    items: list[tuple[int, int]] = []  # open list items: (marker column, text column)
    for line in text.split("\n"):
        if line.rstrip().endswith("::"):
            line = line.rstrip()[:-1]
            if line.strip() == ":":
                line = ""
        if not line.strip():
            out.append(line)
            continue
        indent = len(line) - len(line.lstrip())
        while items and indent < items[-1][1]:
            items.pop()
        shift = sum(4 - (text_col - marker_col) for marker_col, text_col in items)
        out.append(" " * max(shift, 0) + line)
        m = _MARKER.match(line, indent)
        if m and indent == (items[-1][1] if items else 0):
            items.append((indent, m.end()))
    return "\n".join(out)


def _objects(obj: griffe.Object):
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _objects(member)


class RstDocstrings(griffe.Extension):
    """Rewrite the package's docstrings from reStructuredText habits to Markdown (see above)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        for obj in _objects(pkg):
            if obj.docstring is not None:
                text = _markdown_blocks(obj.docstring.value)
                obj.docstring.value = _roles(pkg, obj, text)
