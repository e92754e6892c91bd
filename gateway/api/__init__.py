"""Wire schemas: msgspec Structs and reusable codecs, no logic."""
