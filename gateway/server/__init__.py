"""The HTTP edge: aiohttp app assembly, handlers, middleware and process management."""
