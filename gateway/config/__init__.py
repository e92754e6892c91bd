"""Configuration: the file's schema, its loader, and zero-config defaults from the environment."""

from gateway.config.errors import ConfigError
from gateway.config.loader import load_config, parse_config
from gateway.config.schema import GatewayCfg

__all__ = ["ConfigError", "GatewayCfg", "load_config", "parse_config"]
