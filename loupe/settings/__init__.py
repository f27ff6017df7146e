"""Settings modules: `base` (every deployment, driven by environment variables) and `test`."""
