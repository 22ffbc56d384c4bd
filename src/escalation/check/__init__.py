"""AST -> CheckedPolicy: names, types, constant folding, rules, tests; every diagnostic has a stable code."""
