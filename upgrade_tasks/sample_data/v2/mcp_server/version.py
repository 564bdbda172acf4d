"""Server version, reported in serverInfo, get_server_info and the state file."""

__version__ = "2.0.0"
