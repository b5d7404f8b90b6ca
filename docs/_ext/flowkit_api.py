"""Sphinx extension: API pages generated from the modules' ``__all__``, so they cannot drift.

``.. flowkit-api:: MODULE`` documents every name in ``MODULE.__all__``:

- for ``flowkit`` itself, one section per defining subpackage (bijectors, flows, ...), each with a
  summary table and a full entry (``autoclass``/``autofunction``/``autodata``) per name;
- for a submodule, a summary table and full entries for the names that are not already documented
  as ``flowkit.NAME`` (re-exported ones link to their top-level entry instead of being documented
  twice, which Sphinx would report as a duplicate).

A module that does not exist yet is skipped with a note (the docs build stays green while a
subpackage is being written); a module that exists but fails to import is a build warning, so
``sphinx-build -W`` fails on it. Nothing is written to the source tree.

The extension also resolves references to private paths of public objects
(``flowkit.bijectors.base.Bijector`` -> ``flowkit.Bijector``), so docstrings may name an object by
any import path.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import inspect
import os
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

#: Section titles for the subpackages that define public names; others get a title from their name.
GROUP_TITLES = {
    "bijectors": "Bijectors",
    "flows": "Flows and base distributions",
    "presets": "Presets",
    "sampling": "Sampling",
    "denoise": "Denoising",
    "metrics": "Metrics",
    "testing": "Testing",
    "data": "Data",
    "training": "Training",
    "maps": "Element-wise maps",
    "_validation": "Input validation",
}

#: Members of ``nn.Module`` subclasses that say nothing about flowkit (their docstrings are torch's), and
#: ``num_classes``, which ``TrainConfig`` redeclares from ``TarFlowConfig`` with a ``None`` default: autodoc
#: lists it a second time beside the entry of the docstring's "Attributes:" section.
EXCLUDED_MEMBERS = "extra_repr, num_classes"


def module_status(name: str) -> tuple[str, Any]:
    """``("ok", module)``, ``("absent", None)`` or ``("broken", exception)`` for a module name.

    An empty folder imports as a namespace package; it counts as absent until it has code.
    """
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError) as e:  # a parent package fails to import
        return "broken", e
    if spec is None:
        return "absent", None
    try:
        module = importlib.import_module(name)
    except Exception as e:  # noqa: BLE001 - reported as a build warning
        return "broken", e
    if getattr(module, "__file__", None) is None:
        return "absent", None
    return "ok", module


def public_names(module: Any) -> list[str]:
    """``module.__all__``, or the names it defines itself without a leading underscore."""
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    return sorted(
        n for n, v in vars(module).items()
        if not n.startswith("_") and getattr(v, "__module__", None) == module.__name__
    )


def entry_directive(obj: Any) -> str:
    if inspect.isclass(obj):
        return "autoclass"
    if inspect.isfunction(obj) or inspect.isbuiltin(obj) or inspect.ismethod(obj):
        return "autofunction"
    if inspect.ismodule(obj):
        return "automodule"
    return "autodata"


def entry_rst(fullname: str, obj: Any) -> list[str]:
    kind = entry_directive(obj)
    lines = [f".. {kind}:: {fullname}"]
    if kind == "autoclass":
        lines += ["   :members:", "   :show-inheritance:", f"   :exclude-members: {EXCLUDED_MEMBERS}"]
    elif kind == "automodule":
        lines += ["   :members:"]
    elif kind == "autodata" and len(repr(obj)) > 100:
        lines += ["   :no-value:"]  # e.g. a dict of configs: the docstring says what it holds
    return lines + [""]


def summary_rst(names: list[str]) -> list[str]:
    """An autosummary table; ``names`` are relative to the current module, or absolute elsewhere."""
    if not names:
        return []
    return [".. autosummary::", "   :nosignatures:", ""] + [f"   {n}" for n in names] + [""]


def group_of(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or ""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "flowkit" else "other"


def group_title(group: str) -> str:
    return GROUP_TITLES.get(group, group.strip("_").replace("_", " ").capitalize() or "Other")


def first_line(module_name: str) -> str:
    try:
        doc = inspect.getdoc(importlib.import_module(module_name)) or ""
    except Exception:  # noqa: BLE001
        return ""
    return doc.strip().split("\n\n")[0].replace("\n", " ")


def parse_rst(directive: SphinxDirective, text: str) -> list[nodes.Node]:
    """Parse generated reStructuredText, section titles allowed, into nodes."""
    if hasattr(directive, "parse_text_to_nodes"):  # Sphinx >= 7.4
        return directive.parse_text_to_nodes(text, allow_section_headings=True)
    from docutils.statemachine import StringList
    from sphinx.util.nodes import nested_parse_with_titles

    holder = nodes.section()
    holder.document = directive.state.document
    nested_parse_with_titles(directive.state, StringList(text.splitlines(), source="<flowkit-api>"), holder)
    return holder.children


class FlowkitApi(SphinxDirective):
    """``.. flowkit-api:: MODULE`` (see the module docstring)."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        status, module = module_status(name)
        if status == "absent":
            note = nodes.note()
            note += nodes.paragraph(text=f"{name} is not part of this build of flowkit.")
            return [note]
        if status == "broken":
            logger.warning("flowkit-api: cannot import %s: %s: %s", name, type(module).__name__, module,
                           location=self.get_location())
            return []
        self.env.note_dependency(getattr(module, "__file__", "") or "")
        lines: list[str] = [f".. automodule:: {name}", ""]
        names = public_names(module)
        missing = [n for n in names if not hasattr(module, n)]
        for n in missing:
            logger.warning("flowkit-api: %s.__all__ lists %r, which it does not define", name, n,
                           location=self.get_location())
        names = [n for n in names if n not in missing]
        if name == "flowkit":
            lines += self._top_level(module, names)
        else:
            lines += self._submodule(module, name, names)
        return parse_rst(self, "\n".join(lines))

    def _top_level(self, module: Any, names: list[str]) -> list[str]:
        groups: dict[str, list[str]] = {}
        for n in names:
            groups.setdefault(group_of(getattr(module, n)), []).append(n)
        lines: list[str] = []
        for group in sorted(groups, key=lambda g: list(GROUP_TITLES).index(g) if g in GROUP_TITLES else 99):
            title = group_title(group)
            lines += [title, "-" * len(title), ""]
            intro = first_line(f"flowkit.{group}") if group != "other" else ""
            if intro:
                lines += [intro, ""]
            lines += summary_rst(groups[group])
            for n in groups[group]:
                lines += entry_rst(f"flowkit.{n}", getattr(module, n))
        return lines

    def _submodule(self, module: Any, name: str, names: list[str]) -> list[str]:
        import flowkit

        top = {n for n in getattr(flowkit, "__all__", ())}
        own, aliased = [], []
        for n in names:
            obj = getattr(module, n)
            if n in top and getattr(flowkit, n, None) is obj:
                aliased.append(n)
            else:
                own.append(n)
        lines = summary_rst(own + [f"flowkit.{n}" for n in aliased])
        if aliased:
            refs = ", ".join(f":obj:`flowkit.{n}`" for n in aliased)
            lines += [f"Also exported here, and documented with the top-level package: {refs}.", ""]
        for n in own:
            lines += entry_rst(f"{name}.{n}", getattr(module, n))
        return lines


class FlowkitCli(SphinxDirective):
    """``.. flowkit-cli:: MODULE:FUNCTION``: the ``--help`` of an argparse parser and its subcommands.

    ``FUNCTION`` builds the parser. Each subcommand gets a section titled with its full command line,
    so the page always shows the options the code actually has.
    """

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        module_name, _, func = self.arguments[0].partition(":")
        status, module = module_status(module_name)
        if status == "absent":
            note = nodes.note()
            note += nodes.paragraph(text=f"{module_name} is not part of this build of flowkit.")
            return [note]
        if status == "broken" or not hasattr(module, func):
            logger.warning("flowkit-cli: cannot load %s", self.arguments[0], location=self.get_location())
            return []
        self.env.note_dependency(module.__file__)
        with _columns(100):
            parser = getattr(module, func)()
            sections = [(parser.prog, parser.format_help())]
            for action in parser._actions:  # noqa: SLF001 - argparse has no public API for this
                if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
                    sections += [(sub.prog, sub.format_help()) for sub in action.choices.values()]
        lines: list[str] = []
        for i, (prog, text) in enumerate(sections):
            if i:
                lines += [prog, "-" * len(prog), ""]
            lines += [".. code-block:: text", ""] + [f"   {line}".rstrip() for line in text.splitlines()] + [""]
        return parse_rst(self, "\n".join(lines))


@contextlib.contextmanager
def _columns(n: int) -> Any:
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(n)
    try:
        yield
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


# -- references to any import path of a documented object ----------------------------------------

def _import_target(target: str) -> Any:
    parts = target.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except Exception:  # noqa: BLE001
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _key(obj: Any) -> int | None:
    obj = getattr(obj, "__func__", obj)  # a classmethod read from its class is a new bound method each time
    if inspect.isclass(obj) or inspect.isfunction(obj) or isinstance(obj, (property, classmethod, staticmethod)):
        return id(obj)
    return None


def _documented(app: Sphinx) -> dict[int, str]:
    cache = getattr(app, "_flowkit_documented", None)
    if cache is None:
        cache = {}
        py = app.env.get_domain("py")
        for fullname in sorted(py.objects, key=len, reverse=True):  # shortest name wins
            if fullname.startswith("flowkit."):
                k = _key(_import_target(fullname))
                if k is not None:
                    cache[k] = fullname
        app._flowkit_documented = cache  # type: ignore[attr-defined]
    return cache


def _candidates(node: Any) -> list[str]:
    """Full names a reference may mean: as written, in the referencing module, or under ``flowkit``."""
    target = node.get("reftarget", "").lstrip("~.")
    names = [target]
    module, cls = node.get("py:module"), node.get("py:class")
    if module and cls:
        names.append(f"{module}.{cls}.{target}")
    if module and not target.startswith(module + "."):
        names.append(f"{module}.{target}")
    if not target.startswith("flowkit."):
        names.append(f"flowkit.{target}")
    return names


def resolve_alias(app: Sphinx, env: Any, node: Any, contnode: Any) -> Any:
    """Resolve a reference to a public object through any of its import paths.

    ``flowkit.bijectors.base.Bijector`` and, inside ``flowkit.bijectors``, ``Bijector.forward_shape``
    both lead to the entry ``flowkit.Bijector``; a reference to an undocumented submodule such as
    ``flowkit.metrics.likelihood`` leads to the closest documented parent module.
    """
    if node.get("refdomain") != "py":
        return None
    py = env.get_domain("py")
    for name in _candidates(node):
        if not name.startswith("flowkit."):
            continue
        if node.get("reftype") == "mod":
            parts = name.split(".")
            while parts and ".".join(parts) not in py.objects:
                parts.pop()
            canonical = ".".join(parts) if parts else None
        else:
            k = _key(_import_target(name))
            canonical = _documented(app).get(k) if k is not None else None
        if canonical is not None and canonical in py.objects:
            ref = py.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], canonical, node, contnode)
            if ref is not None:
                return ref
    return None


def drop_type_docstrings(app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    """Module data without a doc comment would show its type's docstring (``dict() -> ...``); drop it."""
    if what in ("data", "attribute") and not inspect.isclass(obj) and not callable(obj):
        type_doc = inspect.getdoc(type(obj)) or ""
        if type_doc and "\n".join(lines).strip() == type_doc.strip():
            lines.clear()


def _reset(app: Sphinx, *args: Any) -> None:
    app._flowkit_documented = None  # type: ignore[attr-defined]


def setup(app: Sphinx) -> dict[str, Any]:
    app.setup_extension("sphinx.ext.autodoc")
    app.setup_extension("sphinx.ext.autosummary")
    app.add_directive("flowkit-api", FlowkitApi)
    app.add_directive("flowkit-cli", FlowkitCli)
    app.connect("missing-reference", resolve_alias)
    app.connect("env-updated", _reset)
    app.connect("autodoc-process-docstring", drop_type_docstrings)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
