#!/usr/bin/env python3
"""Build the patched copy of Meta's Cloud API OpenAPI spec.

Loads Meta's original YAML (read-only, outside the repo), applies
conformance/patches.json in order as RFC 6902 JSON Patch operations and writes
conformance/meta-cloud-api-v23.0.patched.json.

    build.py            rebuild and write the patched copy
    build.py --check    rebuild in memory; exit 1 if the committed copy differs
    build.py --spec PATH   use another original YAML

Any op that does not apply (missing path, failed "test") aborts the build: a
silently skipped patch would leave a defect in place while the patch list
claims it is fixed.
"""

import argparse
import copy
import json
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_SPEC = REPO / ".." / "shared" / "reference" / "meta" / "openapi" / "business-messaging-api_v23.0.yaml"
PATCHES = HERE / "patches.json"
PATCHED = HERE / "meta-cloud-api-v23.0.patched.json"


class PatchError(Exception):
    pass


def _stringify_keys(node):
    """JSON objects only have string keys. The YAML has one unquoted response
    code (`200:` under /whatsapp/webhooks) that PyYAML reads as an int; turn
    such keys into strings so pointers and json.dumps(sort_keys) work."""
    if isinstance(node, dict):
        return {str(k): _stringify_keys(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_stringify_keys(v) for v in node]
    return node


def load_original(spec_path=DEFAULT_SPEC):
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # C loader: ~5x faster
    with open(spec_path, encoding="utf-8") as fh:
        return _stringify_keys(yaml.load(fh, Loader=loader))


# ---------------------------------------------------------------- JSON Patch

def _parse_pointer(pointer):
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"invalid JSON pointer {pointer!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/")]


def _child(container, token, pointer):
    if isinstance(container, dict):
        if token not in container:
            raise PatchError(f"{pointer}: no member {token!r}")
        return container[token]
    if isinstance(container, list):
        if not token.isdigit() or int(token) >= len(container):
            raise PatchError(f"{pointer}: no index {token!r}")
        return container[int(token)]
    raise PatchError(f"{pointer}: cannot descend into a {type(container).__name__}")


def _resolve_parent(doc, pointer):
    tokens = _parse_pointer(pointer)
    if not tokens:
        raise PatchError("operations on the document root are not supported")
    node = doc
    for tok in tokens[:-1]:
        node = _child(node, tok, pointer)
    return node, tokens[-1]


def _get(doc, pointer):
    node = doc
    for tok in _parse_pointer(pointer):
        node = _child(node, tok, pointer)
    return node


def _add(doc, pointer, value):
    parent, key = _resolve_parent(doc, pointer)
    if isinstance(parent, dict):
        parent[key] = value
    elif isinstance(parent, list):
        if key == "-":
            parent.append(value)
        elif key.isdigit() and int(key) <= len(parent):
            parent.insert(int(key), value)
        else:
            raise PatchError(f"{pointer}: bad array index for add")
    else:
        raise PatchError(f"{pointer}: parent is not a container")


def _remove(doc, pointer):
    parent, key = _resolve_parent(doc, pointer)
    value = _child(parent, key, pointer)
    if isinstance(parent, dict):
        del parent[key]
    else:
        del parent[int(key)]
    return value


def apply_op(doc, op):
    kind, path = op.get("op"), op.get("path")
    if kind == "add":
        _add(doc, path, copy.deepcopy(op["value"]))
    elif kind == "remove":
        _remove(doc, path)
    elif kind == "replace":
        parent, key = _resolve_parent(doc, path)
        _child(parent, key, path)  # must exist
        parent[key if isinstance(parent, dict) else int(key)] = copy.deepcopy(op["value"])
    elif kind == "move":
        _add(doc, path, _remove(doc, op["from"]))
    elif kind == "copy":
        _add(doc, path, copy.deepcopy(_get(doc, op["from"])))
    elif kind == "test":
        actual = _get(doc, path)
        if actual != op["value"]:
            raise PatchError(f"{path}: test failed, found {json.dumps(actual)[:200]}")
    else:
        raise PatchError(f"unknown op {kind!r}")


def apply_patches(doc, patches):
    for patch in patches:
        for i, op in enumerate(patch["ops"]):
            try:
                apply_op(doc, op)
            except (PatchError, KeyError) as exc:
                raise PatchError(f"patch {patch['id']} ({patch.get('defect')}) op #{i} {op.get('op')} {op.get('path')}: {exc}") from None
    return doc


# ---------------------------------------------------------------- build

def load_patches():
    with open(PATCHES, encoding="utf-8") as fh:
        patches = json.load(fh)
    seen = set()
    for p in patches:
        missing = {"id", "defect", "why", "ops"} - p.keys()
        if missing:
            raise PatchError(f"patch {p.get('id')}: missing {sorted(missing)}")
        if p["id"] in seen:
            raise PatchError(f"duplicate patch id {p['id']}")
        seen.add(p["id"])
    return patches


def build(spec_path=DEFAULT_SPEC):
    return apply_patches(load_original(spec_path), load_patches())


def serialise(doc):
    # sorted keys + fixed indent: the same input always yields the same bytes
    return json.dumps(doc, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", default=str(DEFAULT_SPEC), help="original YAML (default: %(default)s)")
    ap.add_argument("--check", action="store_true", help="fail if the committed patched copy is stale")
    args = ap.parse_args()
    try:
        text = serialise(build(args.spec))
    except PatchError as exc:
        print(f"build.py: {exc}", file=sys.stderr)
        return 2
    if args.check:
        current = PATCHED.read_text(encoding="utf-8") if PATCHED.exists() else None
        if current != text:
            print(f"build.py --check: {PATCHED.name} is out of date with patches.json; run conformance/build.py", file=sys.stderr)
            return 1
        print(f"build.py --check: {PATCHED.name} is up to date ({len(load_patches())} patches)")
        return 0
    PATCHED.write_text(text, encoding="utf-8")
    print(f"wrote {PATCHED.relative_to(REPO)} ({len(load_patches())} patches)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
