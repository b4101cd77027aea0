"""swapio page server and http backend."""
