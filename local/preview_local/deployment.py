"""``template.yaml`` deployed on this machine: the SAM transform, then what CloudFormation would fill in.

The template goes through the same translator ``sam deploy`` uses (``samtranslator``), so the
functions' environments already include ``Globals`` and the APIs are plain ``RestApi`` bodies
(OpenAPI with ``x-amazon-apigateway-*`` extensions). Then the intrinsics this stack needs are
resolved: parameters (validated against ``AllowedPattern``/``AllowedValues`` like
CloudFormation does), ``Ref``/``Fn::GetAtt`` of resources (tables and keys to the names created
on the moto server, functions and APIs to stable local names), ``Fn::Sub``, ``Fn::FindInMap``,
``Fn::Join``, ``Fn::If``. Anything else fails loudly: the local stack never guesses.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from preview_local.cfn_template import PROJECT_ROOT, project_template

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
PARTITION = "aws"
STACK_NAME = "preview-local"
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")
# What ``Ref: AWS::NoValue`` resolves to: the property (or list item) holding it is removed.
_NO_VALUE = object()


class LocalDeploymentError(RuntimeError):
    """The template cannot be deployed locally as it stands (a bad parameter, an unknown intrinsic)."""


@dataclass(frozen=True)
class FunctionDeployment:
    """A Lambda function as deployed: its code directory, handler and resolved environment."""

    name: str
    code_dir: Path
    handler: str
    environment: Mapping[str, str]
    timeout_seconds: int
    memory_mb: int


@dataclass(frozen=True)
class RestApiDeployment:
    """A REST API as deployed: its id, its stage and its OpenAPI definition, intrinsics resolved."""

    logical_id: str
    api_id: str
    stage: str
    definition: Mapping[str, Any]


@dataclass(frozen=True)
class LocalDeployment:
    functions: Mapping[str, FunctionDeployment]
    rest_apis: Mapping[str, RestApiDeployment]
    parameters: Mapping[str, str]

    def combined_environment(self) -> dict[str, str]:
        """Every function's environment in one: they share a process, so a name means one value."""
        combined: dict[str, str] = {}
        for function in self.functions.values():
            for name, value in function.environment.items():
                if combined.setdefault(name, value) != value:
                    raise LocalDeploymentError(
                        f"functions disagree on {name}; they cannot share one local process"
                    )
        return combined


def api_id_for(logical_id: str) -> str:
    """A stable, execute-api-shaped id (10 lower-case letters and digits) for a RestApi."""
    return hashlib.sha256(logical_id.encode()).hexdigest()[:10]


def sam_transform(template: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Path]]:
    """The CloudFormation ``sam deploy`` would create, and each function's local code directory.

    Local ``CodeUri``/``ContentUri`` paths become S3 placeholders first, as ``sam validate``
    does, since the translator accepts only S3 locations.
    """
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    sam_template = copy.deepcopy(dict(template))
    code_dirs: dict[str, Path] = {}
    for logical_id, resource in sam_template["Resources"].items():
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(key), str):
                if resource["Type"] == "AWS::Serverless::Function":
                    code_dirs[logical_id] = PROJECT_ROOT / properties[key]
                properties[key] = f"s3://preview-local/{logical_id}"
    logging.getLogger("samtranslator").setLevel(logging.ERROR)
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=REGION))
    translated: dict[str, Any] = translator.translate(
        sam_template, parameter_values={}, get_managed_policy_map=lambda: {}
    )
    return translated, code_dirs


def deploy_locally(
    parameters: Mapping[str, str],
    physical_ids: Mapping[str, str],
    template: Mapping[str, Any] | None = None,
) -> LocalDeployment:
    """Resolve the template for this machine.

    ``parameters`` override the template's defaults; ``physical_ids`` name resources by logical
    id (``TenantsTable`` -> the table created on moto, ``SigningKeyMasterKey`` -> its key id).
    """
    translated, code_dirs = sam_transform(template if template is not None else project_template())
    values = _parameter_values(translated.get("Parameters", {}), parameters)
    resolver = _Resolver(translated, values, physical_ids)
    functions: dict[str, FunctionDeployment] = {}
    rest_apis: dict[str, RestApiDeployment] = {}
    resources: dict[str, Any] = translated["Resources"]
    for logical_id, resource in resources.items():
        if not resolver.condition_holds(resource.get("Condition")):
            continue
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::Lambda::Function" and logical_id in code_dirs:
            variables = resolver.resolve(properties.get("Environment", {}).get("Variables", {}))
            functions[logical_id] = FunctionDeployment(
                name=logical_id,
                code_dir=code_dirs[logical_id],
                handler=str(resolver.resolve(properties["Handler"])),
                environment={name: _string(value) for name, value in variables.items()},
                timeout_seconds=int(resolver.resolve(properties.get("Timeout", 3))),
                memory_mb=int(resolver.resolve(properties.get("MemorySize", 128))),
            )
        elif resource["Type"] == "AWS::ApiGateway::RestApi":
            rest_apis[logical_id] = RestApiDeployment(
                logical_id=logical_id,
                api_id=api_id_for(logical_id),
                stage=_stage_of(resources, logical_id, resolver),
                definition=resolver.resolve(properties["Body"]),
            )
    return LocalDeployment(functions=functions, rest_apis=rest_apis, parameters=values)


def _string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _stage_of(resources: Mapping[str, Any], api_logical_id: str, resolver: _Resolver) -> str:
    """The stage the API is served on: the one its base path mapping names, else its only stage."""
    stages = {
        logical_id: str(resource["Properties"]["StageName"])
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::ApiGateway::Stage"
        and resource["Properties"].get("RestApiId") == {"Ref": api_logical_id}
        and resolver.condition_holds(resource.get("Condition"))
    }
    for resource in resources.values():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::ApiGateway::BasePathMapping" and properties.get("RestApiId") == {
            "Ref": api_logical_id
        }:
            mapped = resolver.chosen_branch(properties["Stage"])
            if isinstance(mapped, dict) and mapped.get("Ref") in stages:
                return stages[mapped["Ref"]]
    if len(stages) == 1:
        return next(iter(stages.values()))
    raise LocalDeploymentError(f"no stage deploys {api_logical_id}")


def _parameter_values(declared: Mapping[str, Any], given: Mapping[str, str]) -> dict[str, str]:
    unknown = set(given) - set(declared)
    if unknown:
        raise LocalDeploymentError(f"the template declares no parameter {', '.join(sorted(unknown))}")
    values: dict[str, str] = {}
    for name, declaration in declared.items():
        if name in given:
            value = given[name]
        elif "Default" in declaration:
            value = _string(declaration["Default"])
        else:
            raise LocalDeploymentError(f"parameter {name} has no default: the local stack must set it")
        pattern = declaration.get("AllowedPattern")
        if pattern is not None and not re.fullmatch(pattern, value):
            raise LocalDeploymentError(f"parameter {name}={value!r} does not match {pattern}")
        allowed = declaration.get("AllowedValues")
        if allowed is not None and value not in [_string(option) for option in allowed]:
            raise LocalDeploymentError(f"parameter {name}={value!r} is not one of {allowed}")
        values[name] = value
    return values


class _Resolver:
    """Evaluates the intrinsic functions of one translated template."""

    def __init__(
        self, template: Mapping[str, Any], parameters: Mapping[str, str], physical_ids: Mapping[str, str]
    ) -> None:
        self._resources: Mapping[str, Any] = template["Resources"]
        self._mappings: Mapping[str, Any] = template.get("Mappings", {})
        self._conditions: Mapping[str, Any] = template.get("Conditions", {})
        self._physical_ids = physical_ids
        self._refs: dict[str, str] = {
            **parameters,
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": PARTITION,
            "AWS::StackName": STACK_NAME,
            "AWS::URLSuffix": "amazonaws.com",
        }

    def resolve(self, value: Any) -> Any:
        """The value with its intrinsics evaluated; ``AWS::NoValue`` drops a key or list item."""
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return _NO_VALUE if argument == "AWS::NoValue" else self._ref(argument)
            if key.startswith("Fn::"):
                return self._function(key, argument)
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not _NO_VALUE}

    def chosen_branch(self, value: Any) -> Any:
        """``value`` with its ``Fn::If`` choices made, nothing else resolved."""
        while isinstance(value, dict) and set(value) == {"Fn::If"}:
            name, when_true, when_false = value["Fn::If"]
            value = when_true if self.condition_holds(name) else when_false
        return value

    def condition_holds(self, name: str | None) -> bool:
        if name is None:
            return True
        return self._truth(self._conditions[name])

    def _function(self, key: str, argument: Any) -> Any:
        if key == "Fn::Sub":
            return self._sub(argument)
        if key == "Fn::GetAtt":
            logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            return self._get_att(logical_id, attribute)
        if key == "Fn::FindInMap":
            mapping, first, second = (self.resolve(part) for part in argument)
            return self._mappings[mapping][first][second]
        if key == "Fn::Join":
            delimiter, parts = argument
            return str(delimiter).join(_string(part) for part in self.resolve(parts))
        if key == "Fn::If":
            name, when_true, when_false = argument
            return self.resolve(when_true if self.condition_holds(name) else when_false)
        raise LocalDeploymentError(f"{key} is not supported by the local stack")

    def _truth(self, condition: Any) -> bool:
        ((key, argument),) = condition.items()
        if key == "Fn::Equals":
            first, second = (self.resolve(part) for part in argument)
            return bool(first == second)
        if key == "Fn::Not":
            return not self._truth(argument[0])
        if key == "Fn::And":
            return all(self._truth(part) for part in argument)
        if key == "Fn::Or":
            return any(self._truth(part) for part in argument)
        if key == "Condition":
            return self.condition_holds(argument)
        raise LocalDeploymentError(f"condition function {key} is not supported by the local stack")

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self._refs:
            return self._refs[name]
        if name in self._physical_ids:
            return self._physical_ids[name]
        resource = self._resources.get(name)
        if resource is None:
            raise LocalDeploymentError(f"Ref to unknown name {name}")
        if resource["Type"] == "AWS::ApiGateway::RestApi":
            return api_id_for(name)
        if resource["Type"] == "AWS::Lambda::Function":
            return name
        raise LocalDeploymentError(f"the local stack has no physical id for {name} ({resource['Type']})")

    def _get_att(self, logical_id: str, attribute: str) -> str:
        resource_type = self._resources.get(logical_id, {}).get("Type")
        arn_prefixes = {
            ("AWS::Lambda::Function", "Arn"): f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT_ID}:function:",
            ("AWS::DynamoDB::Table", "Arn"): f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT_ID}:table/",
            ("AWS::KMS::Key", "Arn"): f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT_ID}:key/",
        }
        prefix = arn_prefixes.get((str(resource_type), attribute))
        if prefix is None:
            raise LocalDeploymentError(f"Fn::GetAtt {logical_id}.{attribute} is not supported locally")
        return prefix + _string(self._ref(logical_id))

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        resolved_variables = {name: self.resolve(value) for name, value in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in resolved_variables:
                return _string(resolved_variables[name])
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return self._get_att(logical_id, attribute)
            return _string(self._ref(name))

        return _SUB_VARIABLE.sub(replace, text)
