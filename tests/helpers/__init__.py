"""What the tests share: hypothesis strategies for policies and events, log comparison, work counting."""
