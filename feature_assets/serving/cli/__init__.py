"""Command lines, one module per noun."""
