"""The API's docs page, rendered on the server from the OpenAPI document: no script, no CDN.

One page: the operations by tag (method, path, summary, parameters, body, responses with their
examples), then every schema with its fields. Everything printed is escaped.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

__all__ = ["render_docs"]

_STYLE = """
body{font-family:system-ui,"Hiragino Sans","Noto Sans JP",sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;line-height:1.5}
code,pre{font-family:ui-monospace,monospace;font-size:.9em}pre{background:#f5f5f5;padding:.5rem;overflow:auto;max-height:20rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:left;vertical-align:top}
.op{border-top:1px solid #999;margin-top:1.5rem}.method{font-weight:bold;text-transform:uppercase;margin-right:.5rem}
"""


def _type(schema: dict[str, Any]) -> str:
    """A short human name for a schema: `string`, `array of WorkView`, `Problem | null` …"""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f'<a href="#schema-{escape(name)}">{escape(name)}</a>'
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " | ".join(_type(s) for s in schema[key])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {_type(schema.get('items', {}))}"
    if "const" in schema:
        return f"<code>{escape(json.dumps(schema['const'], ensure_ascii=False))}</code>"
    if "enum" in schema:
        return " | ".join(f"<code>{escape(str(v))}</code>" for v in schema["enum"])
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"map of {_type(schema['additionalProperties'])}"
    return escape(str(kind))


def _limits(schema: dict[str, Any]) -> str:
    names = ("minimum", "maximum", "minLength", "maxLength", "maxItems", "pattern", "default", "format")
    found = [f"{n}: {json.dumps(schema[n], ensure_ascii=False)}" for n in names if n in schema]
    for alternative in schema.get("anyOf", []):
        found += [f"{n}: {json.dumps(alternative[n], ensure_ascii=False)}" for n in names if n in alternative]
    return escape(", ".join(found))


def _example(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=2)
    return f"<pre>{escape(text)}</pre>"


def _operation(path: str, method: str, op: dict[str, Any]) -> str:
    parts = [f'<section class="op" id="{escape(op["operationId"])}">',
             f'<h3><span class="method">{escape(method)}</span><code>{escape(path)}</code></h3>',
             f"<p>{escape(op.get('summary', ''))}</p>"]  # fmt: skip
    if op.get("description"):
        parts.append(f"<p>{escape(op['description'])}</p>")
    if op.get("security"):
        parts.append("<p>Needs <code>Authorization: Bearer …</code> (POST /api/v1/auth/login).</p>")
    if op.get("parameters"):
        rows = "".join(
            f"<tr><td><code>{escape(p['name'])}</code></td><td>{escape(p['in'])}</td><td>{'yes' if p.get('required') else ''}</td>"
            f"<td>{_type(p['schema'])}</td><td>{_limits(p['schema'])}</td><td>{escape(p.get('description', ''))}</td></tr>"
            for p in op["parameters"]
        )
        parts.append(f"<table><tr><th>parameter</th><th>in</th><th>required</th><th>type</th><th>limits</th><th></th></tr>{rows}</table>")
    body = op.get("requestBody")
    if body:
        media = body["content"]["application/json"]
        parts.append(f"<p>Body (application/json): {_type(media['schema'])}</p>")
        if media.get("example") is not None:
            parts.append(_example(media["example"]))
    rows = []
    for status, response in op["responses"].items():
        content = response.get("content", {})
        kinds = "; ".join(f"{escape(mt)}: {_type(m.get('schema', {}))}" for mt, m in content.items())
        rows.append(f"<tr><td>{escape(status)}</td><td>{escape(response['description'])}</td><td>{kinds}</td></tr>")
    parts.append(f"<table><tr><th>status</th><th>when</th><th>body</th></tr>{''.join(rows)}</table>")
    for status, response in op["responses"].items():
        for media in response.get("content", {}).values():
            if media.get("example") is not None and status.startswith("2"):
                parts.append(f"<p>Example {escape(status)}:</p>{_example(media['example'])}")
    parts.append("</section>")
    return "".join(parts)


def _schema(name: str, schema: dict[str, Any]) -> str:
    parts = [f'<section id="schema-{escape(name)}"><h3>{escape(name)}</h3>']
    if schema.get("description"):
        parts.append(f"<p>{escape(schema['description'])}</p>")
    properties = schema.get("properties", {})
    if properties:
        required = set(schema.get("required", []))
        rows = "".join(
            f"<tr><td><code>{escape(field)}</code></td><td>{'yes' if field in required else ''}</td><td>{_type(prop)}</td>"
            f"<td>{_limits(prop)}</td><td>{escape(prop.get('description', ''))}</td></tr>"
            for field, prop in properties.items()
        )
        parts.append(f"<table><tr><th>field</th><th>required</th><th>type</th><th>limits</th><th></th></tr>{rows}</table>")
    else:
        parts.append(f"<p>{_type(schema)}</p>")
    parts.append("</section>")
    return "".join(parts)


def render_docs(document: dict[str, Any]) -> str:
    info = document["info"]
    by_tag: dict[str, list[str]] = {}
    index: list[str] = []
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            by_tag.setdefault(op["tags"][0], []).append(_operation(path, method, op))
            index.append(f'<li><a href="#{escape(op["operationId"])}"><code>{escape(method.upper())} {escape(path)}</code></a> '
                         f"{escape(op.get('summary', ''))}</li>")  # fmt: skip
    sections = "".join(f"<h2>{escape(tag)}</h2>{''.join(ops)}" for tag, ops in by_tag.items())
    schemas = "".join(_schema(name, s) for name, s in sorted(document["components"]["schemas"].items()))
    return (
        f'<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>{escape(info["title"])} API</title>'
        f"<style>{_STYLE}</style></head><body><h1>{escape(info['title'])} API {escape(info['version'])}</h1>"
        f"<p>{escape(info.get('description', ''))}</p>"
        f'<p>Machine-readable: <a href="/api/v1/openapi.json">/api/v1/openapi.json</a> (OpenAPI {escape(document["openapi"])})</p>'
        f"<ul>{''.join(index)}</ul>{sections}<h2>Schemas</h2>{schemas}</body></html>"
    )
