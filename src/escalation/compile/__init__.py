"""CheckedPolicy -> CompiledPolicy: slots and plans, closures, and the generated Python of the step functions."""
