"""The HTTP edge: the HTTP/1.1 server, routing and error replies, handlers, app assembly and
process management."""
