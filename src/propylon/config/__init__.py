"""The gateway's declarative config: models, units and the YAML loader."""

from propylon.config.loader import load_config, load_config_text
from propylon.config.models import GatewayConfig
from propylon.errors import ConfigError

__all__ = ["ConfigError", "GatewayConfig", "load_config", "load_config_text"]
