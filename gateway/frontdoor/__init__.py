"""Other providers' client APIs served from any model: Anthropic's Messages API for now."""
