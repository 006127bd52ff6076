"""The bottom layer: errors, where resources live, running external tools, the logger."""
