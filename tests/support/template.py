"""template.yaml as data: the SAM template as written, and its CloudFormation translation.

* :func:`sam_template` is template.yaml parsed with CloudFormation's short-form tags (``!Ref``,
  ``!Sub``, ``!GetAtt``...) in their long form (``{"Ref": ...}``, ``{"Fn::Sub": ...}``,
  ``{"Fn::GetAtt": [resource, attribute]}``), by the same loader the local stack reads it with.
* :func:`cloudformation` runs the SAM transform offline (samtranslator, no AWS call) exactly as
  the local stack does (:func:`preview_local.deployment.sam_transform`).
* :func:`placeholder_physical_ids` names every table and the master key, for a local deployment
  of the template that never touches them.
* :func:`find_in_map` and :func:`substitute` resolve the intrinsics tests need to compare the
  template's text with values computed in Python.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from functools import cache
from typing import Any

from preview_local.cfn_template import load_template, table_definitions
from preview_local.deployment import sam_transform

Template = dict[str, Any]


@cache
def _sam_template() -> Template:
    return load_template()


def sam_template() -> Template:
    """template.yaml as written (a fresh copy: tests may change it)."""
    return copy.deepcopy(_sam_template())


@cache
def _cloudformation() -> Template:
    translated, _ = sam_transform(sam_template())
    return translated


def cloudformation() -> Template:
    """template.yaml after the SAM transform: plain CloudFormation (a fresh copy)."""
    return copy.deepcopy(_cloudformation())


def find_in_map(template: Mapping[str, Any], value: Any) -> Any:
    """``{"Fn::FindInMap": [map, top, second]}`` resolved against the template's Mappings."""
    if isinstance(value, Mapping) and set(value) == {"Fn::FindInMap"}:
        map_name, top_key, second_key = value["Fn::FindInMap"]
        return template["Mappings"][map_name][top_key][second_key]
    return value


def substitute(value: Any, variables: Mapping[str, str]) -> str:
    """A one-argument ``Fn::Sub`` (or a plain string) with its ``${Name}`` variables replaced."""
    if isinstance(value, Mapping) and set(value) == {"Fn::Sub"}:
        value = value["Fn::Sub"]
    if not isinstance(value, str):
        raise TypeError(f"expected a string or a one-argument Fn::Sub, got {value!r}")
    return re.sub(r"\$\{([^}!]+)\}", lambda match: variables[match.group(1)], value)


def placeholder_physical_ids(**extra: str) -> dict[str, str]:
    """Physical ids for every table of the template and its master key (plus ``extra``)."""
    tables = {logical_id: logical_id.lower() for logical_id in table_definitions(_sam_template())}
    return {**tables, "SigningKeyMasterKey": "key-id", **extra}
