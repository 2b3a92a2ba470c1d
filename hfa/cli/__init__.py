"""The command-line layer: thin commands that parse, call the core, and hand results to Output."""
