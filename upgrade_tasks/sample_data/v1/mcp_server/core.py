"""Minimal MCP server core: decorator tool registry and JSON-RPC 2.0 dispatch."""

from __future__ import annotations

import inspect
import json
import logging
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from mcp_server.version import __version__

logger = logging.getLogger("mcp_server.core")

SUPPORTED_PROTOCOL_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18")
LATEST_PROTOCOL_VERSION = "2025-06-18"

_JSON_TYPES = {"str": "string", "int": "integer", "bool": "boolean", "float": "number"}


def _json_type(annotation: Any) -> str:
    if isinstance(annotation, str):
        name = annotation
    else:
        name = getattr(annotation, "__name__", "")
    return _JSON_TYPES.get(name, "string")


def _input_schema(fn: Callable[..., Any]) -> Dict[str, Any]:
    properties: Dict[str, Any] = {}
    required: List[str] = []
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        prop: Dict[str, Any] = {"type": _json_type(param.annotation), "title": param.name}
        if param.default is param.empty:
            required.append(param.name)
        else:
            prop["default"] = param.default
        properties[param.name] = prop
    schema: Dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


class Tool:
    def __init__(self, name: str, fn: Callable[..., Any], description: str) -> None:
        self.name = name
        self.fn = fn
        self.description = description
        self.input_schema = _input_schema(fn)

    def describe(self) -> Dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "inputSchema": self.input_schema,
        }


def _error(msg_id: Any, code: int, message: str) -> Dict[str, Any]:
    return {"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}}


class Server:
    """Tool registry with a FastMCP-like decorator API: ``@mcp.tool()``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.version = __version__
        self.transport = "stdio"
        self.base_path = Path(".praxis-os")
        self._tools: Dict[str, Tool] = {}

    def tool(
        self, name: Optional[str] = None, description: Optional[str] = None
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            tool_name = name or fn.__name__
            doc = description or inspect.getdoc(fn) or ""
            self._tools[tool_name] = Tool(tool_name, fn, doc)
            return fn

        return decorator

    def tool_names(self) -> List[str]:
        return sorted(self._tools)

    def handle(self, message: Any) -> Optional[Dict[str, Any]]:
        """Answer one JSON-RPC message; ``None`` for notifications and responses."""
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            return _error(None, -32600, "Invalid Request")
        method = message.get("method")
        is_notification = "id" not in message
        msg_id = message.get("id")
        if not isinstance(method, str):
            return None if is_notification else _error(msg_id, -32600, "Invalid Request")
        if is_notification:
            logger.debug("notification %s", method)
            return None
        params = message.get("params") or {}
        try:
            if method == "initialize":
                result = self._initialize(params)
            elif method == "ping":
                result = {}
            elif method == "tools/list":
                result = {"tools": [self._tools[n].describe() for n in self.tool_names()]}
            elif method == "tools/call":
                result = self._call_tool(params)
            else:
                return _error(msg_id, -32601, "Method not found: " + method)
        except Exception as exc:  # internal error, answered, not fatal
            logger.exception("internal error while handling %s", method)
            return _error(msg_id, -32603, "Internal error: %s" % exc)
        return {"jsonrpc": "2.0", "id": msg_id, "result": result}

    def _initialize(self, params: Dict[str, Any]) -> Dict[str, Any]:
        requested = params.get("protocolVersion")
        if requested in SUPPORTED_PROTOCOL_VERSIONS:
            version = requested
        else:
            version = LATEST_PROTOCOL_VERSION
        return {
            "protocolVersion": version,
            "capabilities": {"tools": {}},
            "serverInfo": {"name": self.name, "version": self.version},
        }

    def _call_tool(self, params: Dict[str, Any]) -> Dict[str, Any]:
        name = params.get("name")
        arguments = params.get("arguments") or {}
        tool = self._tools.get(name) if isinstance(name, str) else None
        if tool is None:
            return _text_result("Unknown tool: %s" % name, True)
        try:
            value = tool.fn(**arguments)
        except Exception as exc:
            logger.warning("tool %s failed: %s", name, exc)
            return _text_result("Error executing tool %s: %s" % (name, exc), True)
        text = value if isinstance(value, str) else json.dumps(value)
        return _text_result(text, False)


def _text_result(text: str, is_error: bool) -> Dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], "isError": is_error}
