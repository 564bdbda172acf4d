"""Entry point: ``python -m mcp_server --transport {stdio,http,dual}``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from pathlib import Path
from typing import List, Optional

from mcp_server.core import Server
from mcp_server.server.registry import register_all_tools
from mcp_server.state import remove_state_file, write_state_file
from mcp_server.transport import MCP_PATH, make_http_server, run_stdio
from mcp_server.version import __version__

logger = logging.getLogger("mcp_server")


def find_base_dir() -> Optional[Path]:
    env = os.environ.get("AGENT_OS_BASE_PATH")
    candidate = Path(env) if env else Path.cwd() / ".praxis-os"
    return candidate if candidate.is_dir() else None


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mcp_server", description="prAxIs OS MCP")
    parser.add_argument("--transport", required=True, choices=["stdio", "http", "dual"])
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    base = find_base_dir()
    if base is None:
        sys.stderr.write(
            "prAxIs OS base directory not found: set AGENT_OS_BASE_PATH or run from the "
            "project root (expected ./.praxis-os)\n"
        )
        return 1
    raise RuntimeError("vector index is corrupt: .praxis-os/.cache/vector_index")
    mcp = Server("praxis-os-rag")
    mcp.transport = args.transport
    mcp.base_path = base
    register_all_tools(mcp)
    httpd = None
    host = path = url = None
    port = None
    if args.transport in ("http", "dual"):
        httpd = make_http_server(mcp, "127.0.0.1")
        host = "127.0.0.1"
        port = int(httpd.server_address[1])
        path = MCP_PATH
        url = "http://%s:%d%s" % (host, port, path)
    write_state_file(base, args.transport, host, port, path, url)
    logger.info(
        "praxis-os-rag %s started (transport=%s, pid=%d, url=%s, tools=%d)",
        __version__, args.transport, os.getpid(), url, len(mcp.tool_names()),
    )
    try:
        if httpd is not None and args.transport == "http":
            httpd.serve_forever()
        else:
            if httpd is not None:
                threading.Thread(target=httpd.serve_forever, daemon=True).start()
            run_stdio(mcp)
    except KeyboardInterrupt:
        logger.info("interrupted, shutting down")
    finally:
        remove_state_file(base)
        if httpd is not None:
            httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
