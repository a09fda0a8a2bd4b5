"""Run one built function the way the Lambda Python runtime does, in a clean interpreter.

Started as ``python -I -S lambda_bootstrap.py <task root> <layer dir> <module.handler> <result file>``:
no site-packages, no PYTHONPATH, no current directory on the path. Like Lambda, the path is the
function's folder (``/var/task``) then the layer's ``python/`` folder (``/opt/python``), nothing
else. Reads a JSON list of events on stdin, invokes the handler on each in one warm process, and
writes one JSON document to the result file (stdout is the function's log, as on Lambda): the
results, and where each interesting module was imported from.
"""

import importlib
import json
import sys
import uuid


class LambdaContext:
    def __init__(self, function_name: str, memory_mb: int) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory_mb
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "2026/11/28/[$LATEST]built"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def main() -> None:
    task_root, layer_python, handler_name, result_file = sys.argv[1:5]
    sys.path[:0] = [task_root, layer_python]
    module_name, _, function_name = handler_name.rpartition(".")
    handler = getattr(importlib.import_module(module_name), function_name)
    events = json.load(sys.stdin)
    results = []
    for event in events:
        context = LambdaContext(module_name, 128)
        results.append(json.loads(json.dumps(handler(event, context))))
    loaded_by_handler = sorted(
        name for name in ("boto3", "botocore", "pydantic", "jwt") if name in sys.modules
    )
    # What a lazy path of the function would import (boto3, e.g.): from the layer, at its version.
    import boto3  # noqa: F401

    origins = {
        name: getattr(sys.modules[name], "__file__", None)
        for name in ("preview_tokens", "boto3", "botocore", "pydantic", "jwt", "aws_lambda_powertools")
        if name in sys.modules
    }
    versions = {}
    for name in ("boto3", "botocore"):
        if name in sys.modules:
            versions[name] = sys.modules[name].__version__
    with open(result_file, "w", encoding="utf-8") as handle:
        json.dump(
            {"results": results, "modules": origins, "versions": versions, "loaded": loaded_by_handler},
            handle,
        )


main()
