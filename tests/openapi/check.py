"""Checks spec/openapi.json and real responses against it (run by tests/it/openapi.rs).

usage: check.py SPEC [SAMPLES]

- SPEC must be a valid OpenAPI 3.1 document (openapi-spec-validator, pinned in
  requirements/dev.lock.txt), and every request example must validate against its schema.
- SAMPLES (optional) is a JSON list of real responses of the real handlers:
  {"label", "method", "path" (the document's path template), "status",
   "content_type" (or null), "body" (parsed JSON, text, or null)}. Each must be documented:
  the operation, the status code (no `default`), the media type, and the body must
  validate against the documented schema (JSON Schema 2020-12).

Prints one line per failure and exits 1 if there is any.
"""

import json
import sys

from jsonschema import Draft202012Validator
from openapi_spec_validator import validate


def schema_with_components(doc, schema):
    # Local `$ref`s (`#/components/...`) resolve against the root of the schema.
    return {**schema, "components": doc.get("components", {})}


def check_schema(doc, schema, value):
    validator = Draft202012Validator(schema_with_components(doc, schema))
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(value)]


def main():
    spec_path = sys.argv[1]
    with open(spec_path, encoding="utf-8") as f:
        doc = json.load(f)
    failures = []
    try:
        validate(doc)
    except Exception as e:  # noqa: BLE001 - any validation error is a failure
        failures.append(f"spec: not valid OpenAPI 3.1: {e}")

    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            for media, content in op.get("requestBody", {}).get("content", {}).items():
                for name, ex in content.get("examples", {}).items():
                    for err in check_schema(doc, content["schema"], ex["value"]):
                        failures.append(f"{method.upper()} {path} example {name} ({media}): {err}")

    if len(sys.argv) > 2:
        with open(sys.argv[2], encoding="utf-8") as f:
            samples = json.load(f)
        for s in samples:
            where = f"{s['label']}: {s['method']} {s['path']} -> {s['status']}"
            op = doc["paths"].get(s["path"], {}).get(s["method"].lower())
            if op is None:
                failures.append(f"{where}: operation not documented")
                continue
            resp = op["responses"].get(str(s["status"]))
            if resp is None:
                failures.append(f"{where}: status not documented for the operation")
                continue
            content = resp.get("content", {})
            body = s["body"]
            if body is None or body == "":
                if content:
                    failures.append(f"{where}: empty body, but the response documents {sorted(content)}")
                continue
            media = (s["content_type"] or "").split(";")[0].strip().lower()
            if media not in content:
                failures.append(f"{where}: content type {media!r} not documented ({sorted(content)})")
                continue
            for err in check_schema(doc, content[media].get("schema", {}), body):
                failures.append(f"{where}: {err}")

    for line in failures:
        print(line)
    print(f"{len(failures)} failure(s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
