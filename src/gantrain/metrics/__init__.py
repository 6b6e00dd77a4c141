"""Sample-quality metrics, registered by name and computed with their protocol recorded."""
