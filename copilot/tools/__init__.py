"""Server tools (run in the worker) and delegation of client tools to the host app."""
