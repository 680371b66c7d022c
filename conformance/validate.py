#!/usr/bin/env python3
"""Validate JSON bodies against the patched copy of Meta's Cloud API spec.

    validate.py BODIES.jsonl      (or "-" for stdin)
    validate.py --doc-examples    validate conformance/doc-examples/*.json

Each JSONL line is an object with "label", "body" and either
    "schema": "<components/schemas name>"           e.g. "WebhookPayload"
or
    "operation": {"method": "post", "path": "/{Version}/{Phone-Number-ID}/messages",
                  "status": 200}                     -> that response's application/json schema
    "operation": {"method": "post", "path": "...", "request": true}
                                                     -> the operation's requestBody schema
"path" must be the spec's path template exactly as written in the spec
(e.g. "/{Version}/{group_id}/join_requests"); on a miss the close matches are
printed. A status falls back to "4XX"-style ranges and then "default", as in
OpenAPI. Validation is JSON Schema Draft 2020-12; OpenAPI-only keywords
(discriminator, example, nullable, ...) are ignored and "format" is not asserted.

Output: one line per failure (label, JSON path, message), then
"validated N bodies, F failed". Exit status 1 if any body failed or a schema or
operation could not be found.
"""

import argparse
import copy
import json
import re
import sys
from pathlib import Path

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

HERE = Path(__file__).resolve().parent
PATCHED = HERE / "meta-cloud-api-v23.0.patched.json"
DOC_EXAMPLES = HERE / "doc-examples"
SPEC_URI = "urn:meta:cloud-api:v23.0"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
MAX_MESSAGE = 300


class LookupFailure(Exception):
    """A referenced schema/operation does not exist: reported as a failure."""


def _escape(token):
    return token.replace("~", "~0").replace("/", "~1")


def _pointer(*tokens):
    return "".join("/" + _escape(str(t)) for t in tokens)


class Spec:
    """One OpenAPI document registered as a Draft 2020-12 resource, so that its
    internal "#/components/schemas/..." refs resolve from any schema in it."""

    def __init__(self, doc):
        self.doc = doc
        self.registry = Registry().with_resource(SPEC_URI, Resource.from_contents(doc, default_specification=DRAFT202012))
        self._validators = {}

    def _get(self, pointer):
        node = self.doc
        try:
            for tok in pointer[1:].split("/") if pointer else []:
                tok = tok.replace("~1", "/").replace("~0", "~")
                node = node[int(tok)] if isinstance(node, list) else node[tok]
        except (KeyError, IndexError, ValueError, TypeError):
            raise LookupFailure(f"dangling reference #{pointer}") from None
        return node

    def _follow(self, pointer):
        """Follow OpenAPI-level $refs (response / requestBody objects)."""
        for _ in range(10):
            node = self._get(pointer)
            ref = node.get("$ref") if isinstance(node, dict) else None
            if not ref:
                return pointer, node
            if not ref.startswith("#/"):
                raise LookupFailure(f"external $ref {ref!r} not supported")
            pointer = ref[1:]
        raise LookupFailure(f"$ref chain too long at {pointer}")

    def schema_pointer(self, target):
        if "schema" in target:
            name = target["schema"]
            if not isinstance(name, str) or name not in self.doc.get("components", {}).get("schemas", {}):
                raise LookupFailure(f"no schema components/schemas/{name}")
            return _pointer("components", "schemas", name)
        op = target.get("operation")
        if not isinstance(op, dict) or "path" not in op or "method" not in op:
            raise LookupFailure('need "schema" or "operation": {"method", "path", "status"|"request"}')
        path, method = str(op["path"]), str(op["method"]).lower()
        paths = self.doc.get("paths", {})
        if path not in paths:
            raise LookupFailure(f"no path {path!r} in the spec; candidates: {', '.join(self.similar_paths(path)) or 'none'}")
        if method not in paths[path]:
            have = [m for m in paths[path] if m in METHODS]
            raise LookupFailure(f"no {method.upper()} {path}; the spec has {', '.join(m.upper() for m in have)}")
        op_ptr = _pointer("paths", path, method)
        if op.get("request"):
            if "requestBody" not in paths[path][method]:
                raise LookupFailure(f"{method.upper()} {path} has no requestBody")
            ptr, body = self._follow(op_ptr + "/requestBody")
        else:
            if "status" not in op:
                raise LookupFailure('operation needs "status" (or "request": true)')
            responses = paths[path][method].get("responses", {})
            status = str(op["status"])
            key = next((k for k in (status, status[:1] + "XX", "default") if k in responses), None)
            if key is None:
                raise LookupFailure(f"{method.upper()} {path} declares no response {status} (has {', '.join(responses)})")
            ptr, body = self._follow(op_ptr + _pointer("responses", key))
        content = body.get("content", {})
        if "application/json" not in content or "schema" not in content["application/json"]:
            raise LookupFailure(f"{ptr}: no application/json schema (content types: {', '.join(content) or 'none'})")
        return ptr + _pointer("content", "application/json", "schema")

    def similar_paths(self, path):
        shape = re.sub(r"\{[^}]*\}", "{}", path)
        literals = {seg for seg in path.split("/") if seg and not seg.startswith("{")}
        out = []
        for p in self.doc.get("paths", {}):
            segs = {seg for seg in p.split("/") if seg and not seg.startswith("{")}
            if re.sub(r"\{[^}]*\}", "{}", p) == shape or (literals and literals <= segs):
                out.append(p)
        return out

    def errors(self, target, body):
        ptr = self.schema_pointer(target)
        validator = self._validators.get(ptr)
        if validator is None:
            validator = Draft202012Validator({"$ref": SPEC_URI + "#" + ptr}, registry=self.registry)
            self._validators[ptr] = validator
        return sorted(validator.iter_errors(body), key=lambda e: [str(p) for p in e.absolute_path])


WEAK = ("oneOf", "anyOf", "not")


def _is_discriminator_miss(err):
    """An enum/const failure on the instance's own "type" member means "this
    oneOf branch is for another message/value type"."""
    return err.validator in ("enum", "const") and list(err.relative_path) == ["type"]


def _likeliest_branch(errors):
    """The errors of the oneOf/anyOf branch the body most likely meant.
    Ranked, in order: its own "type" discriminator matches, the instance has
    its required keys, no nested "type" member mismatches, fewest errors,
    deepest cause. (jsonschema's best_match often picks a wrong branch here,
    e.g. the system-message branch for a text message missing "from".)"""
    by_branch = {}
    for err in errors:
        by_branch.setdefault(err.relative_schema_path[0] if err.relative_schema_path else None, []).append(err)

    def plausibility(errs):
        return (
            not any(_is_discriminator_miss(e) for e in errs),
            not any(e.validator == "required" and not e.relative_path for e in errs),
            not any(e.validator in ("enum", "const") and list(e.relative_path)[-1:] == ["type"] for e in errs),
            -len(errs),
            max(_depth(e) for e in errs),
        )

    return max(by_branch.values(), key=plausibility)


def _causes(error):
    """Leaf errors explaining `error`, descending into oneOf/anyOf branches."""
    if not error.context:
        return [error]
    return [leaf for sub in _likeliest_branch(error.context) for leaf in _causes(sub)]


def _depth(error):
    return max((len(leaf.absolute_path), leaf.validator not in WEAK) for leaf in _causes(error))


def describe(error):
    """[(JSON path, message)] for an error: for a oneOf/anyOf failure these are
    the causes in the likeliest branch, not the generic "... is not valid
    under any of the given schemas"."""
    out = []
    for leaf in _causes(error):
        message = leaf.message
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE] + "..."
        out.append((leaf.json_path, message))
    return out


def check(spec, label, target, body, out):
    """Return True if the body is valid; print one line per failure."""
    try:
        errs = spec.errors(target, body)
    except LookupFailure as exc:
        print(f"FAIL {label}: {exc}", file=out)
        return False
    for err in errs:
        for path, message in describe(err):
            print(f"FAIL {label} {path}: {message}", file=out)
    return not errs


def read_jsonl(source):
    fh = sys.stdin if source == "-" else open(source, encoding="utf-8")
    with fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                yield n, line


def run_jsonl(spec, source):
    total = failed = 0
    for n, line in read_jsonl(source):
        total += 1
        try:
            item = json.loads(line)
            label = item.get("label", f"line {n}")
            body = item["body"]
        except (ValueError, KeyError, AttributeError) as exc:
            print(f"FAIL line {n}: not a JSON object with a body ({exc})")
            failed += 1
            continue
        if not check(spec, label, item, body, sys.stdout):
            failed += 1
    print(f"validated {total} bodies, {failed} failed")
    return 1 if failed else 0


def load_doc_examples():
    for path in sorted(DOC_EXAMPLES.glob("*.json")):
        with open(path, encoding="utf-8") as fh:
            yield path.stem, json.load(fh)


def _load_build():
    sys.path.insert(0, str(HERE))
    sys.dont_write_bytecode = True  # no __pycache__ left in the repo
    import build  # sibling module; needs pyyaml and Meta's original YAML

    return build


def run_ablation(examples):
    """For each patch, rebuild the spec without it and count the doc examples
    that then fail: a patch no example needs is descriptive only."""
    build = _load_build()
    original = build.load_original()
    patches = build.load_patches()
    print("ablation: doc examples failing when one patch is left out:")
    for i, patch in enumerate(patches):
        try:
            doc = build.apply_patches(copy.deepcopy(original), patches[:i] + patches[i + 1:])
        except build.PatchError as exc:
            print(f"  {patch['id']} ({patch['defect']}): a later patch depends on it ({exc})")
            continue
        spec = Spec(doc)
        failing = []
        for name, ex in examples:
            try:
                if spec.errors(ex, ex["body"]):
                    failing.append(name)
            except LookupFailure:
                failing.append(name)
        shown = ", ".join(failing[:4]) + (", ..." if len(failing) > 4 else "")
        print(f"  {patch['id']} ({patch['defect']}): {len(failing)}" + (f" [{shown}]" if failing else " (no doc example needs it: text-evidenced or descriptive)"))


def run_doc_examples(spec, ablation=False):
    examples = list(load_doc_examples())
    failed = sum(not check(spec, f"{name} ({ex['source']})", ex, ex["body"], sys.stdout) for name, ex in examples)

    # Informational: how many of the docs' own examples Meta's ORIGINAL spec
    # rejects. Every rejection here is one a patch in patches.json removes.
    try:
        original = Spec(_load_build().load_original())
    except Exception as exc:  # the original lives outside the repo
        print(f"(original spec not available, comparison skipped: {exc})")
    else:
        rejected = []
        for name, ex in examples:
            try:
                errs = original.errors(ex, ex["body"])
            except LookupFailure as exc:
                rejected.append((name, "-", str(exc)))
                continue
            if errs:
                rejected.append((name, *describe(errs[0])[0]))
        print(f"original spec rejects {len(rejected)} of {len(examples)} doc examples (informational):")
        for name, path, message in rejected:
            print(f"  original rejects {name} {path}: {message[:160]}")
        if ablation:
            run_ablation(examples)
    print(f"validated {len(examples)} bodies, {failed} failed")
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("jsonl", nargs="?", help='JSONL file of {"label","body","schema"|"operation"}; "-" for stdin')
    ap.add_argument("--doc-examples", action="store_true", help="validate conformance/doc-examples/*.json")
    ap.add_argument("--ablation", action="store_true", help="with --doc-examples: per patch, count the examples failing without it")
    ap.add_argument("--spec", default=str(PATCHED), help="patched spec JSON (default: %(default)s)")
    args = ap.parse_args()
    if bool(args.jsonl) == args.doc_examples:
        ap.error("give either a JSONL file or --doc-examples")
    if args.ablation and not args.doc_examples:
        ap.error("--ablation goes with --doc-examples")
    with open(args.spec, encoding="utf-8") as fh:
        spec = Spec(json.load(fh))
    return run_doc_examples(spec, args.ablation) if args.doc_examples else run_jsonl(spec, args.jsonl)


if __name__ == "__main__":
    sys.exit(main())
