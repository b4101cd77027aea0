"""swapio's ``file`` backend: swap areas in a regular file or on a block device."""
