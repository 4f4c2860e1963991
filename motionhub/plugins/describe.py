"""``motionhub list <kind> <name>``: one component's arguments and the contract of its kind."""

from __future__ import annotations

import inspect
import textwrap

from motionhub.plugins.arguments import Argument, arguments_of, contract
from motionhub.plugins.registry import Component, plural

# Arguments the framework fills in when the recipe leaves them out (the recipe may still set them).
SUPPLIED = {
    "encoder": {"format": "the data set's MotionFormat"},
    "quantizer": {"dim": "the encoder's output width"},
    "decoder": {"format": "the data set's MotionFormat", "dim": "the quantizer's output width",
                "encoder": "the built encoder"},
    "metric": {"codebook_size": "the quantizer's codebook size"},
}


def default_text(argument: Argument, kind: str) -> str:
    supplied = SUPPLIED.get(kind, {}).get(argument.name)
    if supplied:
        return f"from motionhub: {supplied}"
    if argument.required:
        return "required"
    return f"default {argument.default!r}"


def describe_component(component: Component) -> str:
    """What ``motionhub list <kind> <name>`` prints: the component, each argument (type, default,
    allowed values, meaning) and what every component of its kind provides."""
    cls = component.cls
    lines = [f"{component.kind} '{component.name}' from plugin {component.provider} ({cls.__module__}.{cls.__qualname__})"]
    doc = inspect.getdoc(cls) or ""
    if doc:
        lines += [textwrap.indent(doc.split("\n\n")[0], "  ")]
    arguments = arguments_of(cls)
    section = {"dataset": "data", "loss": "losses[i]", "metric": "eval.metrics[i]",
               "protocol": "eval.protocols[i]"}.get(component.kind, component.kind)
    where = (f"on the command line: motionhub {component.kind[:6]} {component.name} ... --<option> <value>"
             if component.kind in ("exporter", "importer")
             else f"in a recipe: {section}: {{name: {component.name}, <argument>: <value>, ...}}")
    if arguments:
        lines += ["", f"Arguments ({where}):"]
        for argument in arguments:
            allowed = f", {argument.bounds.allowed()}" if argument.bounds else ""
            lines.append(f"  {argument.name}: {argument.type_text}{allowed}  [{default_text(argument, component.kind)}]")
            if argument.doc:
                lines.append(f"      {argument.doc}")
    else:
        lines += ["", "Takes no arguments."]
    text = contract(component.kind)
    if text:
        lines += ["", f"What every {component.kind} provides:", textwrap.indent(text, "  ")]
    lines += ["", f"Other {plural(component.kind)}: motionhub list {plural(component.kind)}"]
    return "\n".join(lines)
