"""Syntax stage: text -> AST (parser), AST -> text (printer)."""
