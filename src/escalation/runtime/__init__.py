"""One event at a time: validation and admission, the interaction's state and decisions, the state codec. No file, process or network I/O."""
