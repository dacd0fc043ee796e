"""CLI verbs, one module per room. Each module has ``register(app)``; ``jointaug.cli`` calls them."""
