"""Text -> AST: the grammar, the transformer, plain-word syntax errors."""
