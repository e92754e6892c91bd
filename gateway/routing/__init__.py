"""Model resolution and target selection."""
