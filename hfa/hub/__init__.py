"""Talking to a Hub endpoint: the HTTP transport, the client with its one request loop and
error classifier (client), and resumable, verified downloads into the cache (download)."""
