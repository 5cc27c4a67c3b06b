"""The OpenAPI 3.1 description of the admin API (``GET /api-docs.json``).

Written by hand, endpoint by endpoint, beside the routes it describes; a test
checks that every route the admin app serves is here and nothing else is.
"""

from __future__ import annotations

from typing import Any

from propylon import __version__
from propylon.admin.openapi_observability import OBSERVABILITY_PATHS

Schema = dict[str, Any]

_PROBLEM: Schema = {
    "type": "object",
    "description": "RFC 9457 problem details; every error of the gateway and its admin API",
    "required": ["type", "title", "status", "detail", "request_id"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "string"}},
    },
}

_TARGET: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "url": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "weight": {"type": "integer", "minimum": 0, "maximum": 1000},
        "draining": {"type": "boolean"},
        "healthy": {"type": "boolean", "description": "every worker's active checks pass"},
        "ejected": {"type": "boolean", "description": "some worker ejected it (passive)"},
        "available": {"type": "boolean"},
        "in_flight": {"type": "integer"},
    },
}

_SERVICE: Schema = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "balance": {"enum": ["round_robin", "least_conn", "random", "hash"]},
        "in_flight": {"type": "integer"},
        "targets": {"type": "array", "items": {"$ref": "#/components/schemas/Target"}},
        "circuit_breaker": {
            "type": "object",
            "properties": {
                "state": {"enum": ["CLOSED", "HALF_OPEN", "OPEN"]},
                "workers": {"type": "array", "items": {"type": "string"}},
                "total": {"type": "integer"},
                "total_failures": {"type": "integer"},
            },
        },
        "workers": {"type": "integer", "description": "how many workers answered"},
    },
}

_STATUS: Schema = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "version": {"type": "string"},
        "pid": {"type": "integer"},
        "state": {"type": "string"},
        "uptime": {"type": "number"},
        "config": {"type": "object"},
        "workers": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "pid": {"type": "integer"},
                    "state": {"type": "string"},
                    "uptime": {"type": "number"},
                    "rss": {"type": "integer"},
                    "requests": {"type": "integer"},
                    "restarts": {"type": "integer"},
                },
            },
        },
    },
}


def _json(schema: Schema, description: str = "OK") -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _problems(*codes: int) -> dict[str, Schema]:
    reasons = {
        400: "not a JSON object",
        401: "missing or wrong bearer token",
        404: "no such service, target, consumer, key or rate limit",
        409: "not possible in this set-up (no Redis; a key of the config file)",
        422: "a field is missing or has a bad value",
        500: "a worker failed",
        503: "no worker answered",
    }
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    return {str(code): {"description": reasons[code], "content": problem} for code in codes}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _body(schema: Schema) -> Schema:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _path_params(*names: str) -> list[Schema]:
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in names
    ]


PATHS: dict[str, dict[str, Schema]] = {
    "/admin/status": {
        "get": {
            "tags": ["cluster"],
            "summary": "Supervisor and workers (what `propylon status` shows)",
            "responses": {"200": _json(_ref("Status")), **_problems(401)},
        }
    },
    "/admin/reload": {
        "post": {
            "tags": ["cluster"],
            "summary": "Validate the config file, then replace the workers one at a time",
            "responses": {
                "200": _json({"type": "object"}, "every worker runs the new config"),
                **_problems(401, 422, 500),
            },
        }
    },
    "/admin/stop": {
        "post": {
            "tags": ["cluster"],
            "summary": "Stop gracefully (drain, then exit)",
            "responses": {"202": _json({"type": "object"}, "stopping"), **_problems(401)},
        }
    },
    "/admin/services": {
        "get": {
            "tags": ["services"],
            "summary": "Every service as the workers see it, merged",
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "services": {"type": "array", "items": _ref("Service")},
                            "workers": {"type": "integer"},
                        },
                    }
                ),
                **_problems(401, 503),
            },
        }
    },
    "/admin/services/{name}": {
        "get": {
            "tags": ["services"],
            "summary": "One service",
            "parameters": _path_params("name"),
            "responses": {"200": _json(_ref("Service")), **_problems(401, 404, 503)},
        }
    },
    "/admin/services/{name}/targets/{target}": {
        "patch": {
            "tags": ["services"],
            "summary": "Change a target's weight or drain it (blue-green, canary)",
            "parameters": _path_params("name", "target"),
            "requestBody": _body(
                {
                    "type": "object",
                    "additionalProperties": False,
                    "minProperties": 1,
                    "properties": {
                        "weight": {"type": "integer", "minimum": 0, "maximum": 1000},
                        "drain": {"type": "boolean"},
                    },
                }
            ),
            "responses": {"200": _json(_ref("Service")), **_problems(400, 401, 404, 422, 503)},
        }
    },
    "/admin/services/{name}/breaker": {
        "post": {
            "tags": ["services"],
            "summary": "Trip (open) or reset (close) a service's circuit breaker",
            "parameters": _path_params("name"),
            "requestBody": _body(
                {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["action"],
                    "properties": {
                        "action": {"enum": ["trip", "reset"]},
                        "reason": {"type": "string"},
                    },
                }
            ),
            "responses": {"200": _json(_ref("Service")), **_problems(400, 401, 404, 422, 503)},
        }
    },
    "/admin/cache/purge": {
        "post": {
            "tags": ["cache"],
            "summary": "Drop cached responses by path pattern (`*` any characters) or route",
            "description": "Every worker purges its memory store, or the shared Redis entries.",
            "requestBody": _body(
                {
                    "type": "object",
                    "additionalProperties": False,
                    "minProperties": 1,
                    "properties": {
                        "pattern": {"type": "string", "examples": ["/api/tickets*"]},
                        "route": {"type": "string"},
                    },
                }
            ),
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "result": {"const": "purged"},
                            "purged": {"type": "integer", "description": "entries removed"},
                            "workers": {"type": "integer"},
                        },
                    }
                ),
                **_problems(400, 401, 422, 503),
            },
        }
    },
}

_KEY_FIELDS: Schema = {
    "tier": {"type": "string", "description": "one of auth.tiers"},
    "roles": {"type": "array", "items": {"type": "string"}},
}
_NEW_KEY = _json(_ref("NewKey"), "the key, shown this once; only its hash is stored")
_REVOKED = _json(
    {
        "type": "object",
        "properties": {
            "consumer": {"type": "string"},
            "revoked": {"type": "array", "items": {"type": "string"}},
        },
    },
    "the ids of the keys deleted from Redis (nodes drop them when their cache expires)",
)

PATHS.update(
    {
        "/admin/consumers": {
            "get": {
                "tags": ["consumers"],
                "summary": "Consumers of the config and of Redis, with their key ids",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "consumers": {"type": "array", "items": _ref("Consumer")}
                            },
                        }
                    ),
                    **_problems(401, 503),
                },
            },
            "post": {
                "tags": ["consumers"],
                "summary": "Create a consumer by creating its first API key (needs redis:)",
                "requestBody": _body(
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["id"],
                        "properties": {"id": {"type": "string"}, **_KEY_FIELDS},
                    }
                ),
                "responses": {"201": _NEW_KEY, **_problems(400, 401, 409, 422, 503)},
            },
        },
        "/admin/consumers/{id}": {
            "get": {
                "tags": ["consumers"],
                "summary": "One consumer",
                "parameters": _path_params("id"),
                "responses": {"200": _json(_ref("Consumer")), **_problems(401, 404, 503)},
            },
            "delete": {
                "tags": ["consumers"],
                "summary": "Revoke every Redis key of a consumer (config keys stay)",
                "parameters": _path_params("id"),
                "responses": {"200": _REVOKED, **_problems(401, 404, 409, 503)},
            },
        },
        "/admin/consumers/{id}/keys": {
            "get": {
                "tags": ["consumers"],
                "summary": "A consumer's keys (ids, never the keys)",
                "parameters": _path_params("id"),
                "responses": {"200": _json({"type": "object"}), **_problems(401, 404, 503)},
            },
            "post": {
                "tags": ["consumers"],
                "summary": "Create an API key for a consumer (needs redis:)",
                "parameters": _path_params("id"),
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": _KEY_FIELDS,
                            }
                        }
                    },
                },
                "responses": {"201": _NEW_KEY, **_problems(400, 401, 409, 422, 503)},
            },
        },
        "/admin/consumers/{id}/keys/{key}": {
            "delete": {
                "tags": ["consumers"],
                "summary": "Revoke one key by its id (the first 12 hex digits of its SHA-256)",
                "parameters": _path_params("id", "key"),
                "responses": {"200": _REVOKED, **_problems(401, 404, 409, 503)},
            }
        },
    }
)

_RATE_KEY_DOC = (
    "A limit key `NAME:SUBJECT` (`global:203.0.113.7`, `tier.free:acme`); "
    "`NAME` alone means every key of that limit (docs/rate-limits.md)"
)
PATHS["/admin/rate-limits/{key}"] = {
    "get": {
        "tags": ["rate limits"],
        "summary": "A key's usage: remaining, reset, policy (per worker with the memory backend)",
        "parameters": [{**_path_params("key")[0], "description": _RATE_KEY_DOC}],
        "responses": {"200": _json({"type": "object"}), **_problems(400, 401, 404, 503)},
    },
    "delete": {
        "tags": ["rate limits"],
        "summary": "Reset a key or every key of a limit, in Redis and in every worker",
        "parameters": [{**_path_params("key")[0], "description": _RATE_KEY_DOC}],
        "responses": {
            "200": _json(
                {
                    "type": "object",
                    "properties": {
                        "key": {"type": "string"},
                        "limit": {"type": "string"},
                        "deleted": {"type": "integer"},
                        "workers": {"type": "integer"},
                    },
                }
            ),
            **_problems(401, 404, 503),
        },
    },
}

_STORED_KEY: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "description": "first 12 hex digits of the key's SHA-256"},
        "tier": {"type": ["string", "null"]},
        "roles": {"type": "array", "items": {"type": "string"}},
        "created": {"type": ["integer", "null"], "description": "Unix time"},
        "source": {"enum": ["config", "redis"]},
    },
}

SCHEMAS: dict[str, Schema] = {
    "Consumer": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "tier": {"type": ["string", "null"]},
            "roles": {"type": "array", "items": {"type": "string"}},
            "in_config": {"type": "boolean"},
            "keys": {"type": "array", "items": {"$ref": "#/components/schemas/StoredKey"}},
        },
    },
    "StoredKey": _STORED_KEY,
    "NewKey": {
        "allOf": [
            {"$ref": "#/components/schemas/StoredKey"},
            {
                "type": "object",
                "properties": {"consumer": {"type": "string"}, "key": {"type": "string"}},
            },
        ]
    },
    "Problem": _PROBLEM,
    "Status": _STATUS,
    "Service": _SERVICE,
    "Target": _TARGET,
}


def build_spec() -> Schema:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "propylon admin API",
            "version": __version__,
            "description": (
                "Operate a running propylon gateway: workers, services, breakers and "
                "state. Served on `admin.listen` (default 127.0.0.1:9901); every "
                "endpoint but these docs needs `Authorization: Bearer <admin.token>` "
                "when a token is set. Errors are `application/problem+json`."
            ),
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "security": [{"bearer": []}],
        "paths": {**PATHS, **OBSERVABILITY_PATHS},
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
