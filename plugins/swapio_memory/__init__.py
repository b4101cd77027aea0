"""swapio's ``memory`` backend: process-local swap areas, the reference plugin."""
